package notify

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of an email event, the outcome label of annals_notifier_emails_total.
const (
	OutcomeSent       = "sent"       // the SMTP server accepted the email
	OutcomeDuplicate  = "duplicate"  // the sent log had it already: nothing sent
	OutcomeSkipped    = "skipped"    // no email was due (a deactivated user)
	OutcomeSuppressed = "suppressed" // over NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR: not sent
	OutcomeRejected   = "rejected"   // refused for good (invalid, or a 5xx): dead-lettered
	OutcomeFailed     = "failed"     // a transient failure: delivered again later
)

type metrics struct {
	emails          *prometheus.CounterVec
	smtp            prometheus.Histogram
	userWait        prometheus.Histogram
	directory       *prometheus.CounterVec
	directoryLag    *prometheus.GaugeVec
	directoryBehind prometheus.Counter
	suppressed      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_notifier_emails_total",
			Help: "Email events handled, by kind of email and outcome (sent, duplicate, skipped, suppressed, rejected, failed).",
		}, []string{"kind", "outcome"}),
		smtp: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "annals_notifier_smtp_send_seconds",
			Help:    "Time to hand one email to the SMTP server, including the wait for the rate limit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		userWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "annals_notifier_user_wait_seconds",
			Help:    "Time an order email waited for its user to appear in the directory.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		directory: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_notifier_directory_events_total",
			Help: "User events read by the directory, by result (applied, or skipped when malformed).",
		}, []string{"result"}),
		directoryLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "annals_notifier_directory_lag_messages",
			Help: "Records of the user topic the directory has not applied yet, by partition, as of its last read.",
		}, []string{"partition"}),
		directoryBehind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_notifier_directory_behind_total",
			Help: "Order emails that paused the group because the directory lacked a user the event store has, after NOTIFIER_USER_WAIT.",
		}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_notifier_emails_suppressed_total",
			Help: "Emails not sent on purpose, by reason (principal_limit: the commands of their principal caused NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR emails in the hour already; erased: their user's personal data is erased).",
		}, []string{"reason"}),
	}
	m.suppressed.WithLabelValues(ReasonPrincipalLimit)
	m.suppressed.WithLabelValues(ReasonErased)
	if reg != nil {
		reg.MustRegister(m.emails, m.smtp, m.userWait, m.directory, m.directoryLag, m.directoryBehind, m.suppressed)
	}
	return m
}

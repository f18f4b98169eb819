package auditlog

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the audit log's Prometheus metrics.
type Metrics struct {
	appended     prometheus.Counter
	skipped      prometheus.Counter
	verifyOK     prometheus.Gauge
	verifyTime   prometheus.Gauge
	verifyLength prometheus.Gauge
}

// NewMetrics creates the audit log's metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_appended_total",
			Help: "Events appended to the audit log (transactions committed).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_duplicates_skipped_total",
			Help: "Deliveries of events the audit log had already, skipped (transactions committed).",
		}),
		verifyOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_auditor_last_verify_ok",
			Help: "1 when the last verification of the chain found it intact, 0 when it found it broken.",
		}),
		verifyTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_auditor_last_verify_timestamp_seconds",
			Help: "When the last verification of the chain finished, in Unix seconds.",
		}),
		verifyLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_auditor_last_verify_entries",
			Help: "The entries the last verification of the chain checked.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.appended, m.skipped, m.verifyOK, m.verifyTime, m.verifyLength)
	}
	return m
}

// tally counts one unit of work's appends until it commits.
type tally struct{ appended, skipped int }

type tallyKey struct{}

// count adds a batch's appends to the unit's tally, or to the metrics at once outside a
// counted unit.
func (m *Metrics) count(ctx context.Context, appended, skipped int) {
	if t, ok := ctx.Value(tallyKey{}).(*tally); ok {
		t.appended += appended
		t.skipped += skipped
		return
	}
	m.add(tally{appended, skipped})
}

func (m *Metrics) add(t tally) {
	m.appended.Add(float64(t.appended))
	m.skipped.Add(float64(t.skipped))
}

func (m *Metrics) verified(r Report) {
	if r.OK {
		m.verifyOK.Set(1)
	} else {
		m.verifyOK.Set(0)
	}
	m.verifyLength.Set(float64(r.Checked))
	m.verifyTime.Set(float64(time.Now().UnixNano()) / 1e9)
}

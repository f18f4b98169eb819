package postgres

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/events"
)

// Metrics are the event store's append metrics. A nil *Metrics records nothing.
type Metrics struct {
	appends  *prometheus.CounterVec
	events   prometheus.Counter
	duration *prometheus.HistogramVec
	retries  prometheus.Counter
	// fences and fenceAge measure the open appends that hold the all-stream (WatchFences).
	fences   prometheus.Gauge
	fenceAge prometheus.Gauge
}

// Append outcomes, the values of the result label.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultFull     = "full"
	resultTooLarge = "too_large"
	resultInvalid  = "invalid"
	resultError    = "error"
)

// NewMetrics creates the store's metrics and registers them on reg (nil: not registered).
// Every outcome's series exists from the start, so that rates of refusals read 0 rather than
// nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_store_appends_total",
			Help: "Appends to the event store, by result: ok, conflict (expected version), full (MAX_EVENTS_PER_AGGREGATE), too_large (an event over MAX_EVENT_BYTES), invalid (other bad input), error. An append in the caller's transaction (AppendTx) counts when it succeeds there, even if that transaction rolls back later.",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_store_appended_events_total",
			Help: "Events appended to the event store (each with its outbox row); in the caller's transaction (AppendTx), counted when the append succeeds there.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_store_append_duration_seconds",
			Help:    "Time of one append, retries after lost races included, by result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_store_append_retries_total",
			Help: "Appends tried again after losing the race for a stream's next version (expected version any or stream_exists).",
		}),
		fences: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_store_open_appends",
			Help: "Appends whose transaction is still open: each holds the all-stream (GET /v1/events, GET /v1/subscribe) below its position until it ends (annals fences).",
		}),
		fenceAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_store_all_stream_held_seconds",
			Help: "How long the oldest open append's transaction has been open, holding the all-stream below its position; 0 when none is open (annals fences).",
		}),
	}
	for _, r := range []string{resultOK, resultConflict, resultFull, resultTooLarge, resultInvalid, resultError} {
		m.appends.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.appends, m.events, m.duration, m.retries, m.fences, m.fenceAge)
	}
	return m
}

// appended records one append of n events that took d and ended with err.
func (m *Metrics) appended(n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	r := resultOK
	var conflict *events.VersionConflictError
	switch {
	case err == nil:
		m.events.Add(float64(n))
	case errors.As(err, &conflict):
		r = resultConflict
	case errors.Is(err, events.ErrStreamFull):
		r = resultFull
	case errors.Is(err, events.ErrTooLarge):
		r = resultTooLarge
	case errors.Is(err, events.ErrInvalid):
		r = resultInvalid
	default:
		r = resultError
	}
	m.appends.WithLabelValues(r).Inc()
	m.duration.WithLabelValues(r).Observe(d.Seconds())
}

func (m *Metrics) retried() {
	if m != nil {
		m.retries.Inc()
	}
}

// fenced records the open appends fs as measured at now.
func (m *Metrics) fenced(fs []Fence, now time.Time) {
	if m == nil {
		return
	}
	m.fences.Set(float64(len(fs)))
	var oldest time.Time
	for _, f := range fs {
		if !f.Since.IsZero() && (oldest.IsZero() || f.Since.Before(oldest)) {
			oldest = f.Since
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(now.Sub(oldest).Seconds(), 0)
	}
	m.fenceAge.Set(age)
}

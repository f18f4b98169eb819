package feed

import "github.com/prometheus/client_golang/prometheus"

// Metrics are a feed's metrics. A nil *Metrics records nothing.
type Metrics struct {
	subscribers prometheus.Gauge
	dropped     prometheus.Counter
	refused     prometheus.Counter
	readErrors  prometheus.Counter
}

// NewMetrics creates the feed's metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_feed_subscribers",
			Help: "Subscriptions to the live feed of the all-stream that run now (GET /v1/subscribe).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_feed_dropped_total",
			Help: "Subscribers dropped for falling more than their buffer behind (FEED_BUFFER).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_feed_refused_total",
			Help: "Subscriptions refused because FEED_MAX_SUBSCRIBERS ran already.",
		}),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_feed_read_errors_total",
			Help: "Reads of the all-stream by the feed that failed and are tried again after a pause.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.subscribers, m.dropped, m.refused, m.readErrors)
	}
	return m
}

func (m *Metrics) subscribersAre(n int) {
	if m != nil {
		m.subscribers.Set(float64(n))
	}
}

func (m *Metrics) droppedOne() {
	if m != nil {
		m.dropped.Inc()
	}
}

func (m *Metrics) refusedOne() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *Metrics) failedRead() {
	if m != nil {
		m.readErrors.Inc()
	}
}

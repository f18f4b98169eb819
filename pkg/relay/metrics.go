package relay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/hops"
)

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	published prometheus.Counter
	errors    prometheus.Counter
	held      *prometheus.CounterVec
	batch     prometheus.Histogram
	latency   prometheus.Histogram
	backlog   prometheus.Gauge
	oldest    prometheus.Gauge
	oldestTx  prometheus.Gauge
	leader    prometheus.Gauge

	heldStreams prometheus.Gauge
	hops        *hops.Histogram
}

// NewMetrics creates the relay's metrics and registers them on reg (nil: not registered),
// with the commit_to_ack hop of annals_hop_seconds (pkg/hops).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_relay_published_events_total",
			Help: "Events published to Kafka and acknowledged by all in-sync replicas.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_relay_publish_errors_total",
			Help: "Publishes that failed in whole or in part (they are retried).",
		}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_relay_held_appends_total",
			Help: "Appends the relay held in the outbox, by cause: unencodable (the encoder refuses an event, such as one without a schema), too_large (over the topic's max.message.bytes), refused (the broker refused its records for good), behind (an earlier append of its stream is held).",
		}, []string{"cause"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "annals_relay_batch_events",
			Help:    "Events per publish.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "annals_relay_commit_to_ack_seconds",
			Help:    "From an event's recording to the broker's acknowledgement of its record.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_relay_outbox_backlog_rows",
			Help: "Appends in the outbox not yet published, held ones included.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_relay_oldest_unpublished_seconds",
			Help: "Age of the oldest append not yet published, held appends left out.",
		}),
		oldestTx: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_relay_oldest_transaction_seconds",
			Help: "How long the database's oldest open transaction has been running. The relay publishes past it, but it keeps vacuum from reclaiming published outbox rows.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_relay_leader",
			Help: "1 while this relay holds the relay lock and publishes, else 0.",
		}),
		heldStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_relay_held_streams",
			Help: "Streams the relay holds: an append it cannot publish waits in the outbox with the stream's later appends behind it, until an operator retries or skips it (annals outbox).",
		}),
	}
	m.hops = hops.NewHistogram(reg, hops.CommitToAck)
	for _, cause := range []string{causeUnencodable, causeTooLarge, causeRefused, causeBehind} {
		m.held.WithLabelValues(cause)
	}
	if reg != nil {
		reg.MustRegister(m.published, m.errors, m.held, m.batch, m.latency, m.backlog, m.oldest, m.oldestTx, m.leader, m.heldStreams)
	}
	return m
}

package consume

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/hops"
)

// Metrics are the runtime's Prometheus metrics, labelled by group, topic and partition.
type Metrics struct {
	processed   *prometheus.CounterVec
	failed      *prometheus.CounterVec
	retried     *prometheus.CounterVec
	dead        *prometheus.CounterVec
	parked      *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	age         *prometheus.HistogramVec
	batch       *prometheus.HistogramVec
	batchSize   *prometheus.HistogramVec
	handler     *prometheus.HistogramVec
	stalls      *prometheus.CounterVec
	committed   *prometheus.GaugeVec
	commits     *prometheus.CounterVec
	blocked     *prometheus.GaugeVec
	hops        *hops.Histogram
	stopped     *prometheus.GaugeVec
	skipped     *prometheus.CounterVec
	pastEnd     *prometheus.CounterVec
}

// NewMetrics creates the runtime's metrics and registers them on reg (nil: not registered),
// with the ack_to_fetch and fetch_to_applied hops of annals_hop_seconds (pkg/hops). One
// Metrics serves any number of consumers; register it once per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	tp := []string{"group", "topic", "partition"}
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_processed_total",
			Help: "Messages the handler finished with (applied, or skipped as seen before or filtered).",
		}, tp),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_failed_total",
			Help: "Handler attempts that returned an error.",
		}, tp),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_retried_total",
			Help: "Handler attempts after the first for a message.",
		}, tp),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_dead_lettered_total",
			Help: "Messages sent to the dead-letter topic because they failed or could not be decoded.",
		}, tp),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_parked_total",
			Help: "Messages sent to the dead-letter topic because an earlier event of their stream was.",
		}, tp),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_quarantined_total",
			Help: "Records set aside to the dead-letter topic without blocking their stream, by reason: signature (the relay did not publish them), undecodable (not known to be the relay's, and no event).",
		}, append(tp, "reason")),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_consumer_event_age_seconds",
			Help:    "From an event's recording to the end of its processing.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, tp),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_consumer_batch_duration_seconds",
			Help:    "Time to process one batch, and to commit the offsets when it ended with a commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"group"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_consumer_batch_messages",
			Help:    "Messages per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"group"}),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_consumer_handler_seconds",
			Help:    "Handler time per message by event type (the Timing middleware).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"group", "type"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_stalls_total",
			Help: "Times processing stopped because a dependency was unavailable and started again from the committed offsets.",
		}, []string{"group"}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "annals_consumer_committed_offset",
			Help: "The last offset this member committed (the next to consume).",
		}, tp),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_commits_total",
			Help: "Offset commits this member sent to its group's coordinator, failed ones included (Config.CommitInterval, CONSUMER_COMMIT_INTERVAL).",
		}, []string{"group"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "annals_consumer_blocked_streams",
			Help: "Streams the group has blocked behind a dead letter, as this member last read them (annals dlq list shows them).",
		}, []string{"group"}),
		stopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "annals_consumer_stopped_partitions",
			Help: "Partitions the group has stopped at a failing event (EVENT_HANDLER_ERROR_HANDLING=false), as this member last read its blocks: nothing of them is handled or committed until annals dlq release.",
		}, []string{"group"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_skipped_records_total",
			Help: "Records the group never processed because the topic's retention deleted them first: its offset was below the partition's first record, and it read on from there.",
		}, tp),
		pastEnd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_consumer_offset_past_end_total",
			Help: "Times the group's offset lay past the end of its partition (an unclean leader election moved the end back, or a reset went too far), and the group read on from the end.",
		}, tp),
	}
	m.hops = hops.NewHistogram(reg, hops.AckToFetch, hops.FetchToApplied)
	if reg != nil {
		reg.MustRegister(m.processed, m.failed, m.retried, m.dead, m.parked, m.quarantined, m.age, m.batch,
			m.batchSize, m.handler, m.stalls, m.committed, m.commits, m.blocked, m.stopped, m.skipped, m.pastEnd)
	}
	return m
}

// partitionMetrics are the series of one partition, looked up once per session.
type partitionMetrics struct {
	processed, failed, retried, dead, parked prometheus.Counter
	age                                      prometheus.Observer
	committed                                prometheus.Gauge
	quarantined                              func(reason string) prometheus.Counter
}

func (m *Metrics) partition(group, topic string, partition int) *partitionMetrics {
	l := []string{group, topic, strconv.Itoa(partition)}
	return &partitionMetrics{
		processed: m.processed.WithLabelValues(l...),
		failed:    m.failed.WithLabelValues(l...),
		retried:   m.retried.WithLabelValues(l...),
		dead:      m.dead.WithLabelValues(l...),
		parked:    m.parked.WithLabelValues(l...),
		age:       m.age.WithLabelValues(l...),
		committed: m.committed.WithLabelValues(l...),
		quarantined: func(reason string) prometheus.Counter {
			return m.quarantined.WithLabelValues(append(slices.Clip(l), reason)...)
		},
	}
}

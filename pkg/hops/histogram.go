package hops

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Hop is one leg of an event's way through the pipeline: a value of the hop label.
type Hop string

// The hops, in the order an event takes them. Each is measured where it ends, on the clock
// of that process: the hops that start in another process (ack_to_fetch, and commit_to_ack
// when the relay runs apart from the database) also measure the clocks' difference, and one
// that would come out negative is observed as 0.
const (
	// CommandToCommit: from the writer's receipt of a command to the commit of the events it
	// recorded (the writer).
	CommandToCommit Hop = "command_to_commit"
	// CommitToAck: from an event's recording in the event store to the broker's
	// acknowledgement of its record by all in-sync replicas (the relay).
	CommitToAck Hop = "commit_to_ack"
	// AckToFetch: from the relay's send of the record (its published-at header; the broker
	// acknowledges it a round trip later) to a consumer's fetch of it (each consumer group).
	AckToFetch Hop = "ack_to_fetch"
	// FetchToApplied: from a consumer's fetch of the record to the end of its handling, the
	// effect committed (each consumer group).
	FetchToApplied Hop = "fetch_to_applied"
)

// MetricName is the name of the hop histogram.
const MetricName = "annals_hop_seconds"

// Buckets are the hop histogram's bucket bounds, in seconds: fine from half a millisecond to
// a second, coarse up to a minute.
var Buckets = []float64{
	0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
	0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60,
}

// Histogram is annals_hop_seconds{hop}: the latency of each hop. A nil *Histogram observes
// nothing.
type Histogram struct{ vec *prometheus.HistogramVec }

// NewHistogram returns the hop histogram registered on reg, registering it unless another
// part of the process has already (the writer's API and its relay share one), with a series
// for each of the hops given, so that they show from the start. A nil reg registers nothing.
func NewHistogram(reg prometheus.Registerer, hops ...Hop) *Histogram {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricName,
		Help: "Latency of each hop of an event's way through the pipeline: command_to_commit (writer), commit_to_ack (relay), " +
			"ack_to_fetch and fetch_to_applied (each consumer group). Hops that start in another process include the clocks' difference.",
		Buckets: Buckets,
	}, []string{"hop"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
			vec = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	for _, h := range hops {
		vec.WithLabelValues(string(h))
	}
	return &Histogram{vec: vec}
}

// Observe records that an event took d over hop; a negative d (clocks apart) counts as 0.
func (h *Histogram) Observe(hop Hop, d time.Duration) {
	if h == nil {
		return
	}
	h.vec.WithLabelValues(string(hop)).Observe(max(d, 0).Seconds())
}

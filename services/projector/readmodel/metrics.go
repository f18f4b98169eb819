package readmodel

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/consume"
)

// Metrics are the projector's own metrics, beside the consumer runtime's.
type Metrics struct {
	endToEnd prometheus.Histogram
}

// NewMetrics creates the projector's metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "annals_projector_end_to_end_seconds",
			Help: "From an event's recording in the event store to the commit of its projection in the read models: " +
				"how long a command's effect takes to become visible to queries.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.endToEnd)
	}
	return m
}

// applied collects the events applied in one unit, which count only once the unit has
// committed: a rolled-back unit applied nothing.
type applied struct {
	recorded []time.Time
	streams  []string
}

type appliedKey struct{}

// noteApplied records that the unit of ctx applied an event of stream recorded at t.
func noteApplied(ctx context.Context, stream string, t time.Time) {
	if a, ok := ctx.Value(appliedKey{}).(*applied); ok {
		a.streams = append(a.streams, stream)
		if !t.IsZero() {
			a.recorded = append(a.recorded, t)
		}
	}
}

// unit wraps u so that, once a unit has committed, the waits on the streams it applied are
// woken and the end-to-end latency of each of its events is observed. The recording time is
// the event store's clock and the commit time this process's, so the figure includes their
// skew when they run on different hosts.
func (p *Projection) unit(u consume.Unit) consume.Unit {
	return func(ctx context.Context, fn func(ctx context.Context) error) error {
		a := &applied{}
		if err := u(context.WithValue(ctx, appliedKey{}, a), fn); err != nil {
			return err
		}
		p.wake.committed(a.streams)
		if p.metrics != nil {
			now := time.Now()
			for _, t := range a.recorded {
				p.metrics.endToEnd.Observe(now.Sub(t).Seconds())
			}
		}
		return nil
	}
}

package benchkit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// DrainConfig describes the drain of pre-filled topics by a fresh consumer group.
type DrainConfig struct {
	// Consumer is the group's configuration (a group of its own, the filled topics); its
	// Metrics and Decode are wrapped to see the progress, the first record and the sizes.
	Consumer consume.Config
	// Events is how many events the topics hold: the drain ends once every one is processed.
	Events int
	// Within bounds the drain (5 minutes when zero).
	Within time.Duration
	// Progress, when set, gets a line a second.
	Progress io.Writer
	// Label names the drain in progress lines and errors.
	Label string
}

// Drain is what a drain measured.
type Drain struct {
	Events int `json:"events"`
	// Elapsed runs from the consumer's start to the last event processed: joining the group
	// included. Fetching runs from the first record decoded, once the group is joined and
	// the first fetch returned, to the last event processed.
	Elapsed  time.Duration `json:"elapsed_ns"`
	Fetching time.Duration `json:"fetching_ns"`
	// EventsPerSec is Events over Fetching; WithJoinPerSec over Elapsed.
	EventsPerSec   float64 `json:"events_per_sec"`
	WithJoinPerSec float64 `json:"with_join_per_sec"`
	// RecordBytes is the average record (value, key, header names and values) of the first
	// thousand decoded.
	RecordBytes float64 `json:"record_bytes"`
	// Emails and EmailsPerSec: the notifier's emails accepted by the mail server, and their
	// rate over Fetching.
	Emails       int     `json:"emails,omitempty"`
	EmailsPerSec float64 `json:"emails_per_sec,omitempty"`
}

// DrainNoOp drains the topics with the consumer runtime and a handler that does nothing: the
// runtime's own cost (fetching, decoding, batches, lanes, commits).
func DrainNoOp(ctx context.Context, cfg DrainConfig) (Drain, error) {
	return DrainWith(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := consume.New(cc, consume.HandlerFunc(func(context.Context, *consume.Message) error { return nil }))
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, nil)
}

// Build makes the consumer a drain runs from the group's configuration as the drain wrapped
// it (use it whole: its Metrics count the progress, its Decode sees the records). The
// function it returns runs the consumer until its context ends.
type Build func(consume.Config) (func(context.Context) error, error)

// Done reports whether the effects of every event of a drain are in place, once the runtime
// has counted them all processed: a service's drain confirms them in its own tables.
type Done func(context.Context) (bool, error)

// DrainWith runs the consumer that build makes until it has processed cfg.Events events and
// done (when set) confirms that their effects are in place. Only processed events count:
// the runtime counts one once its handler, and its unit's transaction, has committed. A
// service's drain (the projector's, the auditor's, the notifier's) is DrainWith with that
// service's consumer, kept where the service may be imported.
func DrainWith(ctx context.Context, cfg DrainConfig, build Build, done Done) (Drain, error) {
	if cfg.Within <= 0 {
		cfg.Within = 5 * time.Minute
	}
	processed := &counter{Registerer: prometheus.NewRegistry(), name: "annals_consumer_processed_total"}
	cc := cfg.Consumer
	cc.Metrics = consume.NewMetrics(processed)
	var mu sync.Mutex
	var first time.Time
	var sized, bytes int
	decode := cc.Decode
	cc.Decode = func(m kafka.Message) (events.Envelope, error) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		if sized < 1000 {
			sized++
			bytes += len(m.Value) + len(m.Key)
			for _, h := range m.Headers {
				bytes += len(h.Key) + len(h.Value)
			}
		}
		mu.Unlock()
		return decode(m)
	}
	run, err := build(cc)
	if err != nil {
		return Drain{}, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- run(rctx) }()
	deadline := start.Add(cfg.Within)
	lastLine := start
	var end time.Time
	for end.IsZero() {
		n, err := processed.value()
		if err != nil {
			return Drain{}, err
		}
		if n >= cfg.Events {
			ok := true
			if done != nil {
				if ok, err = done(ctx); err != nil {
					return Drain{}, fmt.Errorf("bench: %s: %w", cfg.Label, err)
				}
			}
			if ok {
				end = time.Now()
				break
			}
		}
		now := time.Now()
		if now.After(deadline) {
			return Drain{}, fmt.Errorf("bench: %s: %d of %d events processed within %v", cfg.Label, n, cfg.Events, cfg.Within)
		}
		if cfg.Progress != nil && now.Sub(lastLine) >= time.Second {
			fmt.Fprintf(cfg.Progress, "bench: %s: %d of %d events, %.0fs\n", cfg.Label, n, cfg.Events, now.Sub(start).Seconds())
			lastLine = now
		}
		select {
		case err := <-ran:
			return Drain{}, fmt.Errorf("bench: %s: the consumer stopped after %d of %d events: %v", cfg.Label, n, cfg.Events, err)
		case <-ctx.Done():
			return Drain{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()
	if err := <-ran; err != nil {
		return Drain{}, fmt.Errorf("bench: %s: %w", cfg.Label, err)
	}
	mu.Lock()
	defer mu.Unlock()
	d := Drain{Events: cfg.Events, Elapsed: end.Sub(start), Fetching: end.Sub(first)}
	d.EventsPerSec = float64(d.Events) / d.Fetching.Seconds()
	d.WithJoinPerSec = float64(d.Events) / d.Elapsed.Seconds()
	if sized > 0 {
		d.RecordBytes = float64(bytes) / float64(sized)
	}
	return d, nil
}

// counter keeps the collector of one metric as a consumer registers its metrics, so that
// the drain reads that metric alone: gathering the whole registry (histograms by partition
// included) every few milliseconds would cost the consumer a noticeable share of the
// processor it is measured on.
type counter struct {
	prometheus.Registerer
	name      string
	collector prometheus.Collector
}

func (c *counter) Register(col prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 16)
	go func() { col.Describe(descs); close(descs) }()
	for d := range descs {
		if strings.Contains(d.String(), `fqName: "`+c.name+`"`) {
			c.collector = col
		}
	}
	return c.Registerer.Register(col)
}

func (c *counter) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

// value is the sum of the metric's series.
func (c *counter) value() (int, error) {
	if c.collector == nil {
		return 0, fmt.Errorf("bench: no metric %s was registered", c.name)
	}
	ms := make(chan prometheus.Metric, 64)
	go func() { c.collector.Collect(ms); close(ms) }()
	n := 0.0
	var err error
	for m := range ms {
		var d dto.Metric
		if werr := m.Write(&d); werr != nil {
			err = werr
			continue
		}
		n += d.GetCounter().GetValue()
	}
	return int(n), err
}

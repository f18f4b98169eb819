package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/auditor/auditlog"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
	"github.com/annals-dev/annals/services/projector/readmodel"
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
	Label    string
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
	return drain(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := consume.New(cc, consume.HandlerFunc(func(context.Context, *consume.Message) error { return nil }))
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, nil)
}

// DrainProjector drains the topics with the projector's consumer into fresh read models on
// pool (a schema with the event store's tables, whose inbox and blocked streams it uses).
// The drain ends once the inbox holds every event.
func DrainProjector(ctx context.Context, pool *pgxpool.Pool, cfg DrainConfig) (Drain, error) {
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		return Drain{}, err
	}
	p := readmodel.New(pool, readmodel.Options{Metrics: readmodel.NewMetrics(prometheus.NewRegistry())})
	return drain(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := p.Consumer(cc)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, func(ctx context.Context) (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = $1`, readmodel.Group).Scan(&n)
		return n >= cfg.Events, err
	})
}

// DrainAuditor drains the topics with the auditor's consumer, working as the auditor's role,
// into a fresh audit log on owner (a schema with the event store's tables, as the schema's
// owner). The drain ends once the chain holds every event; the chain is then verified, out
// of the time.
func DrainAuditor(ctx context.Context, owner *pgxpool.Pool, cfg DrainConfig) (Drain, error) {
	if _, err := auditlog.Migrate(ctx, owner, nil, ""); err != nil {
		return Drain{}, err
	}
	role, err := auditlog.RolePool(ctx, owner, "")
	if err != nil {
		return Drain{}, err
	}
	defer role.Close()
	l := auditlog.New(role, auditlog.Options{Metrics: auditlog.NewMetrics(prometheus.NewRegistry())})
	d, err := drain(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := l.Consumer(cc)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, func(ctx context.Context) (bool, error) {
		var head int
		err := owner.QueryRow(ctx, `select coalesce(max(seq), 0) from annals_audit_log`).Scan(&head)
		return head >= cfg.Events, err
	})
	if err != nil {
		return d, err
	}
	r, err := l.Verify(ctx, auditlog.VerifyOptions{})
	if err != nil {
		return d, fmt.Errorf("bench: verify the audit log: %w", err)
	}
	if !r.OK || r.Checked != int64(cfg.Events) {
		return d, fmt.Errorf("bench: the audit log after the drain: %s; want an intact chain of %d entries", r, cfg.Events)
	}
	return d, nil
}

// DrainNotifier drains the topics with the notifier as its service wires it from app (sender,
// built-in templates, user directory on the user topic userTopic), into a fresh sent log on
// pool (a schema with the event store's tables). The drain ends once the mail server has
// accepted emails emails.
func DrainNotifier(ctx context.Context, pool *pgxpool.Pool, app *config.Config, userTopic string, emails int, cfg DrainConfig) (Drain, error) {
	if _, err := notify.Migrate(ctx, pool, nil); err != nil {
		return Drain{}, err
	}
	tpl, err := templates.Load(app.Notifier.TemplatesDir)
	if err != nil {
		return Drain{}, err
	}
	snd, err := sender.New(sender.Config{
		Addr: app.SMTP.Addr, From: app.SMTP.From, Username: app.SMTP.Username, Password: app.SMTP.Password.Reveal(),
		TLS: sender.TLSMode(app.SMTP.StartTLS), Timeout: app.SMTP.Timeout, Rate: float64(app.Notifier.RateLimit),
		UserAgent: "annals-notifier",
	})
	if err != nil {
		return Drain{}, err
	}
	defer snd.Close()
	n := notify.New(pool, snd, tpl, notify.Options{MessageIDDomain: snd.Domain(), UserWait: app.Notifier.UserWait,
		Registerer: prometheus.NewRegistry()})
	d, err := drain(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := n.Consumer(cc)
		if err != nil {
			return nil, err
		}
		dir, err := n.Directory(notify.DirectoryConfig{Brokers: cc.Brokers, Topic: userTopic, Decode: cfg.Consumer.Decode})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			var wg sync.WaitGroup
			wg.Go(func() { _ = dir.Run(ctx) })
			defer wg.Wait()
			return c.Run(ctx)
		}, nil
	}, func(ctx context.Context) (bool, error) {
		var sent int
		err := pool.QueryRow(ctx, `select count(*) from annals_notifier_sent`).Scan(&sent)
		return sent >= emails, err
	})
	d.Emails = emails
	if d.Fetching > 0 {
		d.EmailsPerSec = float64(emails) / d.Fetching.Seconds()
	}
	return d, err
}

// drain runs the consumer that build makes until it has processed cfg.Events events and
// done (when set) confirms that their effects are in place. Only processed events count:
// the runtime counts one once its handler, and its unit's transaction, has committed.
func drain(ctx context.Context, cfg DrainConfig, build func(consume.Config) (func(context.Context) error, error),
	done func(context.Context) (bool, error)) (Drain, error) {
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

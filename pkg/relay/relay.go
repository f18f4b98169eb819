package relay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Encoder turns an event into a Kafka record value. Encoding is deterministic: an error means
// the event can never be published as it is (no schema for its type, data that does not fit
// the schema), so the relay holds its stream instead of retrying it (an operator retries it
// once the cause is fixed, or skips it). The relay calls Encode from several goroutines at
// once.
type Encoder interface {
	Encode(e events.Envelope) (value []byte, contentType string, fingerprint uint64, err error)
}

// Signer signs a record the relay is about to publish: it adds the header that proves the
// relay published it (signing.Signer). The relay calls Sign from several goroutines at once.
type Signer interface {
	Sign(m *kafka.Message)
}

// Config tunes a Relay. Zero values take the defaults noted.
type Config struct {
	Brokers     []string
	TopicPrefix string // "annals"
	// MaxBatchEvents bounds one publish (5000 events). MaxBatchBytes bounds each partition's
	// share of it (900 KiB, and never more than the topic's max.message.bytes allows), so that
	// the share is a single produce batch, which the broker appends whole or not at all: a
	// failed publish is retried as a whole and per-stream order holds.
	MaxBatchEvents int
	MaxBatchBytes  int
	// MaxReadBytes bounds the event data (data and metadata) of one read of the outbox
	// (16 MiB), so that a backlog of large events is published a window at a time within a
	// known memory: a read holds the appends of whole transactions that fit in it, or those of
	// one transaction alone if they are larger.
	MaxReadBytes int64
	// MaxRecordBytes, when set, caps the largest record below what each topic takes. By
	// default the relay reads each topic's max.message.bytes from the broker (at the first
	// publish to the topic, again every minute and after the broker refuses a batch as too
	// large) and holds a stream whose append does not fit in it; it assumes Kafka's default
	// of 1 MiB only when the broker does not say.
	MaxRecordBytes int
	// PollInterval is how often an idle relay looks at the outbox without a wake-up (50 ms).
	PollInterval time.Duration
	// RetryBackoff is the pause after a failed publish (500 ms).
	RetryBackoff time.Duration
	// WriteTimeout bounds one publish (10 s).
	WriteTimeout time.Duration
	// StatsInterval is how often the publishing relay measures the outbox's backlog for its
	// metrics (5 s), whether publishing succeeds, fails or never pauses.
	StatsInterval time.Duration
	// LockKey is the advisory lock that elects the one publishing relay among several.
	LockKey int64
	// Signer, when set, adds the signature header to every record (signing.Signer), so
	// that consumers can tell the relay's records from anyone else's. Without one the
	// records go out unsigned, and consumers that verify set them aside.
	Signer Signer
	// Security is how the relay connects to the brokers (TLS, SASL); the zero value is
	// plaintext.
	Security kafkasec.Security
	Logger   *slog.Logger
	Metrics  *Metrics
	// Tracing gives each append the relay sends a publish span, a child of the append's own
	// (the traceparent in its events' metadata), and puts that span's trace context in its
	// records' headers, so that the consumers' handling joins the trace. The zero value uses
	// OpenTelemetry's global provider and propagator, which do nothing until a program sets
	// them.
	Tracing hops.Tracing
}

func (c *Config) setDefaults() {
	if c.TopicPrefix == "" {
		c.TopicPrefix = "annals"
	}
	if c.MaxBatchEvents <= 0 {
		c.MaxBatchEvents = 5000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 900 << 10
	}
	if c.MaxReadBytes <= 0 {
		c.MaxReadBytes = 16 << 20
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = 5 * time.Second
	}
	if c.LockKey == 0 {
		h := fnv.New64a()
		h.Write([]byte("annals relay " + c.TopicPrefix))
		c.LockKey = int64(h.Sum64())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Relay publishes the outbox to Kafka.
type Relay struct {
	outbox   Outbox
	enc      Encoder
	cfg      Config
	balancer kafka.Murmur2Balancer // where the Java clients put a key
	wake     chan struct{}
	log      *slog.Logger
	m        *Metrics
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator

	client *kafka.Client
	// The state below belongs to the goroutine that leads.
	topics     map[string]*topicInfo // partitions and size limit, refreshed every publish round that fails
	alone      map[partitionKey]int  // partitions publishing one append a round, and for how many more rounds
	readEvents int                   // the event budget of the next read, adapted to the events' sizes
	health     *health
}

// New returns a Relay of the outbox; Run starts it.
func New(o Outbox, enc Encoder, cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("relay: no Kafka brokers")
	}
	transport, err := cfg.Security.Transport()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Relay{
		outbox:     o,
		enc:        enc,
		cfg:        cfg,
		wake:       make(chan struct{}, 1),
		log:        cfg.Logger,
		m:          m,
		tracer:     cfg.Tracing.Tracer(tracerScope),
		prop:       cfg.Tracing.TextMapPropagator(),
		client:     &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.WriteTimeout, Transport: transport},
		topics:     map[string]*topicInfo{},
		alone:      map[partitionKey]int{},
		readEvents: min(cfg.MaxBatchEvents, firstReadEvents),
		health:     newHealth(),
	}, nil
}

// Wake makes an idle relay look at the outbox now. It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close releases the relay's idle Kafka connections.
func (r *Relay) Close() error {
	if t, ok := r.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// Run publishes until ctx ends. Among relays sharing a database, one at a time holds the
// advisory lock and publishes; the others wait to take over. It returns nil when ctx ends.
//
// A failure of the database or of the brokers pauses and retries, however long it lasts. A
// broker that refuses the relay itself does not: its ACLs do not let it publish to (or
// describe) a topic, or it refuses its credentials or certificate (kafkasec.Classify). No
// retry cures that until an operator changes a setting, a certificate or an ACL, so Run
// returns that refusal, a *kafkasec.Error that names what is missing.
func (r *Relay) Run(ctx context.Context) error {
	listenCtx, stopListen := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.listen(listenCtx) })
	defer func() {
		stopListen()
		wg.Wait()
	}()
	for ctx.Err() == nil {
		r.health.waiting()
		err := r.lead(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		r.health.set(Failing, err)
		if refused(err) {
			r.log.Error("relay: the brokers refuse the relay; stopping", "error", err)
			return err
		}
		r.log.Warn("relay: lost its database session; retrying", "error", err)
		r.sleep(ctx, r.cfg.RetryBackoff)
	}
	return nil
}

// refused reports whether err is a broker refusing the relay's security or permissions.
func refused(err error) bool {
	var e *kafkasec.Error
	return errors.As(err, &e)
}

// refusal is err as a *kafkasec.Error when the broker refused the relay's security, or its
// permission for op on topic; otherwise err.
func (r *Relay) refusal(err error, op, topic string) error {
	return kafkasec.Classify(kafkasec.Denied(err, kafkasec.Access{Operation: op, Topic: topic}, r.cfg.Security), r.cfg.Security)
}

// lead waits for the relay lock, then publishes through the session that holds it: if that
// session breaks, the lock goes with it and this relay stops publishing.
func (r *Relay) lead(ctx context.Context) error {
	sess, err := r.outbox.Lead(ctx, r.cfg.LockKey, 10*r.cfg.PollInterval)
	if err != nil {
		return err
	}
	defer func() {
		// Another relay measures the backlog now: figures this one can no longer update must
		// not linger on its /metrics.
		r.m.leader.Set(0)
		r.m.backlog.Set(0)
		r.m.oldest.Set(0)
		r.m.oldestTx.Set(0)
		r.m.heldStreams.Set(0)
		sess.Close() // drops the lock
	}()
	r.m.leader.Set(1)
	r.log.Info("relay: publishing (holds the relay lock)")

	statsEvery := time.NewTicker(r.cfg.StatsInterval)
	defer statsEvery.Stop()
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	var nextStats time.Time
	for {
		// Measured on every turn that is due, not only when idle: while publishing fails (the
		// brokers are down) or the outbox never runs dry is when the backlog figures matter.
		if now := time.Now(); !now.Before(nextStats) {
			r.observe(ctx, sess)
			nextStats = now.Add(r.cfg.StatsInterval)
		}
		n, err := r.drain(ctx, sess)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && (sess.Lost() || refused(err)):
			return err
		case err != nil:
			r.health.set(Failing, err)
			r.m.errors.Inc()
			r.log.Warn("relay: publish failed; retrying after a pause", "error", err, "settled", n)
			if !r.sleep(ctx, r.cfg.RetryBackoff) {
				return nil
			}
			continue
		}
		r.health.published(n)
		if n > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-poll.C:
		case <-statsEvery.C:
		}
	}
}

func (r *Relay) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// listen wakes the relay on NOTIFY from appends in other processes (postgres.Options.Notify).
func (r *Relay) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.outbox.Listen(ctx, r.Wake)
		if ctx.Err() == nil {
			r.log.Debug("relay: stopped listening for appends; listening again after a pause", "error", err)
			r.sleep(ctx, r.cfg.RetryBackoff)
		}
	}
}

// observe refreshes the backlog gauges, and returns to the flow the appends kept behind a
// hold that was deleted by hand.
func (r *Relay) observe(ctx context.Context, sess outbox.Session) {
	if n, err := sess.Reconcile(ctx); err != nil {
		r.log.Debug("relay: reconciling held appends failed", "error", err)
	} else if n > 0 {
		r.log.Info("relay: appends held behind a hold that no longer exists flow again", "appends", n)
	}
	b, err := sess.Backlog(ctx)
	if err != nil {
		r.log.Debug("relay: backlog query failed", "error", err)
		return
	}
	r.m.backlog.Set(float64(b.Appends))
	r.m.oldest.Set(b.OldestAppend.Seconds())
	r.m.oldestTx.Set(b.OldestTransaction.Seconds())
	r.m.heldStreams.Set(float64(b.HeldStreams))
}

package consume

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/sourcegraph/conc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/logctx"
)

// Decoder turns a record into the event it carries. An error sends the record to the
// dead-letter topic and blocks its stream (by key), except a *QuarantineError, which sets
// the record aside without blocking anything, and an error marked Unavailable, which pauses
// processing as a failed dependency does (NewDecoder says when it returns which).
type Decoder func(m kafka.Message) (events.Envelope, error)

// Config configures a Consumer. Zero values take the defaults noted.
type Config struct {
	Brokers  []string
	Group    string
	Topics   []string
	DLQTopic string  // where failed and parked messages go; required
	Decode   Decoder // required

	// BatchSize is the most messages processed together (500). Linger is how
	// long a batch waits to fill once it has a message; zero waits for nothing: a batch takes
	// the messages that have already arrived. Batches still grow with the load without it,
	// since messages arrive while the previous batch is processed, and a linger would add its
	// whole length to the latency of every message at a low rate.
	BatchSize int
	Linger    time.Duration
	// Lanes is how many streams are handled at once (8). Messages are put in lanes by key, so
	// one stream's messages are handled one after the other, in order; 1 handles everything
	// in order.
	//
	// MinPerLane (8) is how many messages of a batch each lane gets, at least, when there is
	// a Unit: each lane's share of a batch is then a unit of work of its own, a transaction
	// with its commit, so a batch is spread over one lane for each MinPerLane messages it
	// holds, up to Lanes. A batch of a few messages, which is what a low rate makes, is one
	// unit of work rather than one per message, and a large batch still uses every lane. The
	// price is parallelism within small batches: their messages run one after the other, so a
	// slow or retried message holds up the others of its batch, and after a failed unit up to
	// 2×MinPerLane−1 messages go one by one. Without a Unit, lanes cost nothing of the kind and
	// every batch uses them all.
	Lanes      int
	MinPerLane int
	// Attempts is how many times a failing message is tried before it goes to the dead-letter
	// topic (3); 1 means no retries. Failures marked Unavailable do not count: they pause the
	// group until the dependency is back, however long that takes. Backoff is the pause before
	// the second attempt (100 ms), doubled for each further one up to MaxBackoff (5 s), which
	// also bounds the pause before processing starts again after a dependency was unavailable.
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// CommitInterval is how often, at most, the group's offsets are committed while messages
	// keep coming (1 s); a negative value commits after every batch. The offsets of the
	// batches processed meanwhile add up, and one commit takes them all: each commit is a
	// request to the group's coordinator and a write to the brokers' __consumer_offsets,
	// which at a commit per batch cost the brokers more than the records themselves. A
	// consumer that runs out of messages commits at once (when none has come for 100 ms), so
	// that its group's lag, which dashboards and `annals lag` read from the committed offsets,
	// reaches zero soon after traffic stops; and a session commits what it processed before it
	// gives up its partitions (a rebalance, a stall, a released stopped partition, Run's end).
	// The trade-off is what a crash loses: at most about CommitInterval of records are
	// delivered again after it. An Inbox skips them; a handler without one sees them again,
	// as at-least-once delivery always allowed.
	CommitInterval time.Duration
	// Sequential commits each batch before the next batch starts, rather than while it is
	// processed, whatever CommitInterval says. With Lanes 1 the handler then runs one message
	// at a time, in the order of each partition, and never beside a commit: the synchronous
	// processing of ASYNC_EVENT_PROCESSING=false.
	Sequential bool
	// Interval, when set, makes the consumer work in rounds rather than as messages arrive:
	// at most every Interval it applies what has arrived, in batches of BatchSize until none
	// is waiting, and then waits for the next round (the periodic projection of
	// REAL_TIME_PROJECTIONS=false). Messages are fetched meanwhile, but none is handled
	// between two rounds. Zero handles messages as they arrive.
	Interval time.Duration
	// StopOnFailure stops a partition at a message that fails (after Attempts, which should
	// then be 1) or cannot be decoded, instead of dead-lettering it: the message is neither
	// dead-lettered nor committed, its stream gets a stopped Block (Block.Stopped), and no
	// later message of its partition is handled or committed until an operator releases the
	// block (BlockTable.Release, or a redrive request, which does the same for a stopped
	// block); the member then reads the partition again from the stopped message and tries it
	// once more. Other partitions keep flowing. annals_consumer_stopped_partitions counts the
	// stopped partitions. A quarantined record (not the relay's) never stops anything.
	StopOnFailure bool
	// Unit, when set, wraps the handling of each lane's share of a batch in one unit of work
	// (PostgresUnit: one transaction), and each message in one of its own after a failure.
	Unit Unit
	// Blocks keeps the streams that are blocked behind a dead letter (MemoryBlocks()).
	Blocks BlockStore
	// BlockRefresh is how often a running consumer reads its group's blocks again (5 s), so
	// that a stream an operator released flows again, and a redrive an operator requested
	// runs, without a restart (see BlockTable). It is a poll rather than a notification: it
	// works with every BlockStore, holds no connection of its own, misses nothing across a
	// reconnect, and costs one small query per member and interval.
	BlockRefresh time.Duration
	// Middleware wraps the handler, inside the runtime's own panic recovery.
	Middleware []Middleware
	// DrainTimeout bounds how long the messages already started may take to finish once the
	// consumer is stopping or its partitions are being reassigned; no other message starts
	// then. What has not finished by then is not committed and is delivered again. It
	// defaults to two thirds of SessionTimeout minus HeartbeatInterval (6 s), and must stay
	// below SessionTimeout minus HeartbeatInterval: a member sends no heartbeat while it
	// drains, and the broker evicts a member it has not heard from within SessionTimeout,
	// giving its partitions to another member while it still works on them.
	DrainTimeout time.Duration
	// Group membership timings: SessionTimeout (10 s), HeartbeatInterval (1 s),
	// RebalanceTimeout (15 s, or DrainTimeout plus 5 s when that is longer; it must exceed
	// DrainTimeout).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration

	// Security is how the consumer connects to the brokers (TLS, SASL); the zero value is
	// plaintext. A broker that refuses it, or whose ACLs do not let the group read its topics,
	// commit or write its dead letters, stops Run (see Run).
	Security kafkasec.Security

	Logger  *slog.Logger
	Metrics *Metrics // NewMetrics(nil) when nil
	// Tracing gives each message a process span from its fetch to the end of its handling,
	// a child of the span whose trace context the record's headers carry (the relay's
	// publish span), or else its event's metadata: the handler's context carries it. The zero
	// value uses OpenTelemetry's global provider and propagator, which do nothing until a
	// program sets them.
	Tracing hops.Tracing
}

func (c *Config) defaults() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("consume: no brokers")
	case c.Group == "":
		return errors.New("consume: no group")
	case len(c.Topics) == 0:
		return errors.New("consume: no topics")
	case c.DLQTopic == "":
		return errors.New("consume: no dead-letter topic")
	case c.Decode == nil:
		return errors.New("consume: no decoder")
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	seti := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	seti(&c.BatchSize, 500)
	if c.Sequential {
		c.CommitInterval = -1 // each batch committed before the next
	} else if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	seti(&c.Lanes, 8)
	seti(&c.MinPerLane, 8)
	seti(&c.Attempts, 3)
	set(&c.Backoff, 100*time.Millisecond)
	set(&c.MaxBackoff, 5*time.Second)
	set(&c.BlockRefresh, 5*time.Second)
	set(&c.SessionTimeout, 10*time.Second)
	set(&c.HeartbeatInterval, time.Second)
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("consume: the heartbeat interval (%s) must be shorter than the session timeout (%s)", c.HeartbeatInterval, c.SessionTimeout)
	}
	set(&c.DrainTimeout, (c.SessionTimeout-c.HeartbeatInterval)*2/3)
	set(&c.RebalanceTimeout, max(15*time.Second, c.DrainTimeout+5*time.Second))
	if c.DrainTimeout+c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("consume: the drain timeout (%s) plus the heartbeat interval (%s) must be shorter than the session timeout (%s): "+
			"a member that drains longer is evicted from its group while it still works", c.DrainTimeout, c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.RebalanceTimeout <= c.DrainTimeout {
		return fmt.Errorf("consume: the rebalance timeout (%s) must exceed the drain timeout (%s)", c.RebalanceTimeout, c.DrainTimeout)
	}
	if c.Blocks == nil {
		c.Blocks = MemoryBlocks()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	return nil
}

// Consumer runs a handler over the topics of one consumer group. See the package comment
// for what it promises.
type Consumer struct {
	cfg       Config
	h         Handler
	batch     BatchHandler // h's, when it has one and there is a Unit
	log       *slog.Logger
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	dialer    *kafka.Dialer      // the group's and the readers' connections
	transport kafka.RoundTripper // the dead-letter writer's and the metadata requests'
	release   func()             // releases transport's connections
	client    *kafka.Client      // metadata and offsets requests, over transport
	dlq       *kafka.Writer
	assigned  atomic.Pointer[map[string][]int]
	blocks    atomic.Pointer[blockSet]                // the session's, nil between sessions
	stop      atomic.Pointer[context.CancelCauseFunc] // ends Run with a refusal
}

// New checks cfg and builds a Consumer of h.
func New(cfg Config, h Handler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("consume: no handler")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dialer, err := cfg.Security.Dialer()
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	transport, release, err := cfg.Security.RoundTripper()
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	log := cfg.Logger.With("group", cfg.Group)
	c := &Consumer{
		cfg:       cfg,
		h:         Chain(h, append([]Middleware{Recover(log)}, cfg.Middleware...)...),
		log:       log,
		tracer:    cfg.Tracing.Tracer(tracerScope),
		prop:      cfg.Tracing.TextMapPropagator(),
		dialer:    dialer,
		transport: transport,
		release:   release,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport},
		dlq: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        cfg.DLQTopic,
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			WriteTimeout: 10 * time.Second,
			Transport:    transport,
		},
	}
	if bh, ok := h.(BatchHandler); ok && cfg.Unit != nil {
		c.batch = bh
	}
	empty := map[string][]int{}
	c.assigned.Store(&empty)
	return c, nil
}

// Assigned returns the partitions this member owns now, by topic.
func (c *Consumer) Assigned() map[string][]int { return maps.Clone(*c.assigned.Load()) }

// Blocked returns the streams this member holds blocked now, as it last read them from its
// BlockStore, in order; nil while it owns no partitions.
func (c *Consumer) Blocked() []string {
	bs := c.blocks.Load()
	if bs == nil {
		return nil
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return slices.Sorted(maps.Keys(bs.m))
}

// Run consumes until ctx ends, then finishes the messages in flight (within DrainTimeout),
// commits what finished, leaves the group and returns nil. It returns an error only when the
// group cannot be set up at all, or when a broker refuses the consumer: its credentials or
// certificate, or an ACL it lacks (Describe on a topic, Read on a topic or on the group, Write
// on the dead-letter topic). No retry cures that until an operator changes a setting, a
// certificate or an ACL, so Run stops as it does when ctx ends, and returns the refusal, a
// *kafkasec.Error that names what is missing. Every other failure of the brokers pauses and
// retries, however long it lasts.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.release()
	defer c.dlq.Close()
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	c.stop.Store(&stop)
	if !c.waitForTopics(rctx) {
		return c.refusal(rctx)
	}
	kerr := kafka.LoggerFunc(func(msg string, args ...any) {
		c.log.Warn("consume: kafka: " + fmt.Sprintf(msg, args...))
	})
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.cfg.Group,
		Brokers:               c.cfg.Brokers,
		Dialer:                c.dialer,
		Topics:                c.cfg.Topics,
		StartOffset:           kafka.FirstOffset,
		SessionTimeout:        c.cfg.SessionTimeout,
		HeartbeatInterval:     c.cfg.HeartbeatInterval,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true,
		ErrorLogger:           kerr,
	})
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	left := make(chan struct{})
	context.AfterFunc(rctx, func() {
		_ = cg.Close() // the generation's work drains and commits, then the member leaves
		close(left)
	})
	for {
		gen, err := cg.Next(context.Background())
		if errors.Is(err, kafka.ErrGroupClosed) {
			<-left
			if err := c.refusal(rctx); err != nil {
				return err
			}
			c.log.Info("consume: left the group")
			return nil
		}
		if err != nil {
			if !c.refuse(err, kafkasec.Access{Operation: "Read", Group: c.cfg.Group}) {
				c.log.Warn("consume: joining the group failed; retrying", "error", err)
			}
			continue
		}
		finished := make(chan struct{})
		gen.Start(func(gctx context.Context) {
			defer close(finished)
			c.generation(ctx, gctx, gen)
		})
		<-finished
	}
}

// refuse stops Run with err when err is a broker refusing the consumer (kafkasec.Classify),
// or its permission for a (kafkasec.Denied), and reports whether it did.
func (c *Consumer) refuse(err error, a kafkasec.Access) bool {
	if a.Group == "" {
		a.Group = c.cfg.Group
	}
	err = kafkasec.Classify(kafkasec.Denied(err, a, c.cfg.Security), c.cfg.Security)
	var e *kafkasec.Error
	if !errors.As(err, &e) {
		return false
	}
	if stop := c.stop.Load(); stop != nil {
		c.log.Error("consume: the brokers refuse the consumer; stopping", "error", err)
		(*stop)(err)
	}
	return true
}

// refusal is the refusal that ended ctx (Run's), nil when it ended otherwise.
func (c *Consumer) refusal(ctx context.Context) error {
	var e *kafkasec.Error
	if err := context.Cause(ctx); errors.As(err, &e) {
		return err
	}
	return nil
}

// waitForTopics waits until every topic exists, and reports false if ctx ended first. A member
// that joins before its topics exist gets no partitions, and kafka-go's partition watcher
// misses topics created between the assignment and its first look: such a member would never
// consume.
func (c *Consumer) waitForTopics(ctx context.Context) bool {
	logged := false
	for {
		resp, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
		missing := slices.Clone(c.cfg.Topics)
		if err != nil && c.refuse(err, kafkasec.Access{Operation: "Describe", Topic: c.cfg.Topics[0]}) {
			return false
		}
		if err == nil {
			for _, t := range resp.Topics {
				if t.Error == nil && len(t.Partitions) > 0 {
					missing = slices.DeleteFunc(missing, func(name string) bool { return name == t.Name })
				}
				if kafkasec.IsAuthorization(t.Error) && c.refuse(t.Error, kafkasec.Access{Operation: "Describe", Topic: t.Name}) {
					return false
				}
			}
			if len(missing) == 0 {
				if logged {
					c.log.Info("consume: the topics exist now; joining the group")
				}
				return true
			}
		}
		if !logged {
			c.log.Warn("consume: waiting for the topics to exist before joining the group", "missing", missing, "error", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

type topicPartition struct {
	topic     string
	partition int
}

// generation consumes the partitions of one generation until it ends, starting again from
// the committed offsets whenever a dependency was unavailable.
func (c *Consumer) generation(ctx, gctx context.Context, gen *kafka.Generation) {
	offsets := map[topicPartition]int64{}
	assigned := map[string][]int{}
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			offsets[topicPartition{topic, p.ID}] = p.Offset
			assigned[topic] = append(assigned[topic], p.ID)
		}
		slices.Sort(assigned[topic])
	}
	c.assigned.Store(&assigned)
	defer func() {
		empty := map[string][]int{}
		c.assigned.Store(&empty)
	}()
	c.log.Info("consume: generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", assigned)
	backoff := c.cfg.Backoff
	// The offsets a session processed and could not commit (its last commit failed): the next
	// session commits them, or the partition's committed offset could stay behind for good.
	unsettled := map[topicPartition]int64{}
	for {
		progressed, stalled, again := c.session(ctx, gctx, gen, offsets, unsettled)
		if gctx.Err() != nil {
			return
		}
		if again {
			continue // a stopped partition was released: read it again from its commit
		}
		if !stalled {
			return
		}
		if progressed {
			backoff = c.cfg.Backoff
		}
		c.cfg.Metrics.stalls.WithLabelValues(c.cfg.Group).Inc()
		c.log.Warn("consume: a dependency is unavailable; starting again from the committed offsets", "pause", backoff)
		select {
		case <-gctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// session reads the assigned partitions from offsets and processes batch after batch until
// the generation ends (stalled false) or a batch could not finish (stalled true), or a
// stopped partition was released (again true: it must be read again from its commit). It
// moves offsets on past what it processed, and commits them; those it could not commit when
// it ended it leaves in unsettled, whose offsets it commits first.
func (c *Consumer) session(ctx, gctx context.Context, gen *kafka.Generation, offsets, unsettled map[topicPartition]int64) (progressed, stalled, again bool) {
	blocked, err := c.cfg.Blocks.Load(gctx, c.cfg.Group)
	if err != nil {
		c.log.Warn("consume: cannot load the blocked streams", "error", err)
		return false, true, false
	}
	bs := &blockSet{m: blocked}
	c.blocks.Store(bs)
	defer c.blocks.Store(nil)
	c.cfg.Metrics.blocked.WithLabelValues(c.cfg.Group).Set(float64(len(blocked)))
	moved, err := c.intoRange(gctx, offsets, c.stoppedPartitions(bs, offsets, nil))
	if err != nil {
		if gctx.Err() == nil && !c.refuse(err, kafkasec.Access{Operation: "Describe", Topic: c.cfg.Topics[0]}) {
			c.log.Warn("consume: cannot read the first and last offsets of the partitions", "error", err)
		}
		return false, true, false
	}
	fctx, stopFetching := context.WithCancel(context.Background())
	msgs := make(chan fetched, c.cfg.BatchSize)
	var fetchers sync.WaitGroup
	pms := map[topicPartition]*partitionMetrics{}
	readers := make([]*kafka.Reader, 0, len(offsets))
	stopFetcher := map[topicPartition]context.CancelFunc{}
	for tp, off := range offsets {
		pms[tp] = c.cfg.Metrics.partition(c.cfg.Group, tp.topic, tp.partition)
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   c.cfg.Brokers,
			Dialer:    c.dialer,
			Topic:     tp.topic,
			Partition: tp.partition,
			MinBytes:  1,
			MaxBytes:  8 << 20,
			MaxWait:   500 * time.Millisecond, // with data waiting, a fetch returns at once
			// The reader waits for the runtime to take each message of a fetched batch; slow
			// handlers must not make that look like a broken connection.
			ReadBatchTimeout: time.Minute,
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
				c.log.Warn("consume: kafka reader: "+fmt.Sprintf(msg, args...), "topic", tp.topic, "partition", tp.partition)
			}),
		})
		readers = append(readers, r)
		if err := r.SetOffset(off); err != nil {
			c.log.Error("consume: cannot set the reader's offset", "topic", tp.topic, "partition", tp.partition, "offset", off, "error", err)
			continue
		}
		pctx, cancel := context.WithCancel(fctx)
		stopFetcher[tp] = cancel
		fetchers.Go(func() { c.fetch(pctx, tp, off, r, msgs) })
	}
	defer func() {
		stopFetching()
		var closing sync.WaitGroup // each Close waits out its reader's fetch in flight
		for _, r := range readers {
			closing.Go(func() { _ = r.Close() })
		}
		closing.Wait()
		fetchers.Wait()
	}()
	// The offsets of processed batches go to the group coordinator at most every
	// CommitInterval, while the next batch is processed: a commit is a round trip to the
	// broker, which the lanes would otherwise wait for, and a write to its __consumer_offsets.
	// One commit is in flight at a time, so that the broker receives them in order, and the
	// session ends only once what it processed is committed.
	k := c.committer(gen, pms, unsettled)
	defer k.close(unsettled) // before the readers close: deferred calls run last in, first out
	k.add(moved)
	stopped := c.stoppedPartitions(bs, offsets, stopFetcher)
	nextRefresh := time.Now().Add(c.cfg.BlockRefresh)
	r := rounds{interval: c.cfg.Interval, start: time.Now(), on: true}
	for {
		if !time.Now().Before(nextRefresh) {
			// Between batches no lane runs: the blocks can change under none of them.
			if !c.refreshBlocks(ctx, gctx, bs, offsets, pms) {
				return progressed, true, false
			}
			nextRefresh = time.Now().Add(c.cfg.BlockRefresh)
			now := c.stoppedPartitions(bs, offsets, stopFetcher)
			for tp, at := range stopped {
				// Released, or its first stop released while a later one holds: read it
				// again from the commit, up to the stop that remains.
				if still, ok := now[tp]; !ok || still != at {
					c.log.Info("consume: a stopped partition was released; reading it again from its committed offset",
						"topic", tp.topic, "partition", tp.partition, "offset", offsets[tp])
					return progressed, false, true
				}
			}
			stopped = now
		}
		wait, due := r.wait(time.Until(nextRefresh))
		if !due {
			k.flush(false, nil) // the round is over
			select {
			case <-gctx.Done():
				return progressed, false, false
			case <-time.After(wait):
			}
			continue // the round or the refresh is due
		}
		// Offsets wait to be committed only as long as messages keep coming: an idle
		// consumer commits them, so that its group's lag reaches zero once traffic stops.
		quiet, pending := k.idle()
		capped := pending && quiet < wait
		if capped {
			wait = quiet
		}
		batch := c.collect(gctx, msgs, wait)
		if gctx.Err() != nil {
			return progressed, false, false
		}
		batch = dropStopped(batch, stopped)
		if len(batch) == 0 {
			if pending {
				k.flush(false, nil)
			}
			if !capped {
				r.end() // nothing is waiting: the round is over
			}
			continue
		}
		start := time.Now()
		items, ok := c.process(ctx, gctx, batch, bs, pms)
		if next := c.committable(items, offsets); len(next) > 0 {
			progressed = true
			k.add(next)
		}
		observe := func() { c.cfg.Metrics.batch.WithLabelValues(c.cfg.Group).Observe(time.Since(start).Seconds()) }
		if ok && k.due() {
			k.flush(false, observe)
		} else {
			observe() // its offsets wait for a later commit, the session's last one if it stopped short
		}
		c.cfg.Metrics.batchSize.WithLabelValues(c.cfg.Group).Observe(float64(len(batch)))
		if !ok {
			return progressed, true, false
		}
		if c.cfg.StopOnFailure {
			stopped = c.stoppedPartitions(bs, offsets, stopFetcher)
		}
	}
}

// intoRange moves each offset that lies outside its partition's records into them, and
// returns those it moved. Below the first record, the topic's retention deleted records before
// the group processed them: nothing brings them back, and the group reads on from the first
// one left. Past the end, which an unclean leader election can move back (or an operator's
// reset can overshoot), the records written from the end on are new ones and none lies
// between, so the group reads on from the end; a reader would wait, unseen, for the partition
// to grow past the offset. Either is logged as an error and counted, for alerts
// (annals_consumer_skipped_records_total, annals_consumer_offset_past_end_total). A stopped
// partition (skip) keeps its offset: nothing of it moves until an operator releases it. An
// error means the bounds of some partition could not be read; the session then pauses as for
// an unavailable dependency, since a reader would skip deleted records without a word.
func (c *Consumer) intoRange(ctx context.Context, offsets, skip map[topicPartition]int64) (map[topicPartition]int64, error) {
	req := map[string][]kafka.OffsetRequest{}
	var asked []topicPartition
	for tp, off := range offsets {
		if _, stopped := skip[tp]; off >= 0 && !stopped {
			req[tp.topic] = append(req[tp.topic], kafka.FirstOffsetOf(tp.partition), kafka.LastOffsetOf(tp.partition))
			asked = append(asked, tp)
		}
	}
	if len(asked) == 0 {
		return nil, nil
	}
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, err
	}
	moved := map[topicPartition]int64{}
	for _, tp := range asked {
		p, err := offsetsOf(resp, tp)
		if err != nil {
			return nil, err
		}
		off := offsets[tp]
		switch {
		case off < p.FirstOffset:
			c.countLost(tp, &lostRecords{from: off, first: p.FirstOffset, n: p.FirstOffset - off})
			moved[tp] = p.FirstOffset
		case off > p.LastOffset:
			c.log.Error("consume: the group's offset is past the end of the partition; reading on from its end",
				"topic", tp.topic, "partition", tp.partition, "offset", off, "end", p.LastOffset)
			c.cfg.Metrics.pastEnd.WithLabelValues(c.cfg.Group, tp.topic, strconv.Itoa(tp.partition)).Inc()
			moved[tp] = p.LastOffset
		}
	}
	maps.Copy(offsets, moved)
	return moved, nil
}

// fetched is a record and when the runtime fetched it.
type fetched struct {
	kafka.Message
	at   time.Time
	lost *lostRecords // records before it that retention deleted unread (fetch)
}

// fetch feeds one partition's records, read from offset from on, to msgs until ctx ends.
//
// The reader skips records on its own when the topic's retention deleted them before it
// fetched them (its offset fell below the partition's first record while it read, or while
// it reconnected), without a word when it reconnects. fetch sees that as a gap between two
// offsets and, when the gap lies below the partition's first record, hands the records lost
// with the record after it (fetched.lost), to be logged and counted once that record is
// processed (committable): a session that ends before leaves its offset below the first
// record, and the next session's intoRange counts them instead. A gap that no deletion
// explains (a compacted topic, the markers of transactions) stops the checks of the
// partition for the session; one whose first record cannot be read is checked again at the
// next record.
func (c *Consumer) fetch(ctx context.Context, tp topicPartition, from int64, r *kafka.Reader, msgs chan<- fetched) {
	g := gaps{tp: tp, next: max(from, -1), checks: true} // -1: from names no offset (the first or the last)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || c.refuse(err, kafkasec.Access{Operation: "Read", Topic: r.Config().Topic}) {
				return
			}
			c.log.Warn("consume: fetch failed; retrying", "topic", r.Config().Topic, "partition", r.Config().Partition, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.cfg.Backoff):
			}
			continue
		}
		select {
		case msgs <- fetched{Message: m, at: time.Now(), lost: c.lostBefore(ctx, &g, m.Offset)}:
		case <-ctx.Done():
			return
		}
	}
}

// offsetsOf is tp's part of resp, or why there is none.
func offsetsOf(resp *kafka.ListOffsetsResponse, tp topicPartition) (kafka.PartitionOffsets, error) {
	i := slices.IndexFunc(resp.Topics[tp.topic], func(p kafka.PartitionOffsets) bool { return p.Partition == tp.partition })
	if i < 0 {
		return kafka.PartitionOffsets{}, fmt.Errorf("no offsets for partition %d of %s", tp.partition, tp.topic)
	}
	if p := resp.Topics[tp.topic][i]; p.Error != nil {
		return kafka.PartitionOffsets{}, fmt.Errorf("offsets of partition %d of %s: %w", tp.partition, tp.topic, p.Error)
	}
	return resp.Topics[tp.topic][i], nil
}

// lostRecords are records of a partition from offset from up to to (exclusive) that its
// reader skipped; n of them, from from on, lay below the partition's first record, first.
type lostRecords struct {
	from, to, first, n int64
}

// gaps follows the offsets one partition's reader returns (fetch).
type gaps struct {
	tp     topicPartition
	next   int64        // the offset expected next; -1: not known yet
	checks bool         // false once a gap was found that no deletion explains
	open   *lostRecords // a gap whose cause is not known yet
	warned bool         // the first record of open could not be read, and that was logged
}

// lostBefore returns the records of g's partition that retention deleted between the record
// before the one at offset and it, if it knows of any (see fetch).
func (c *Consumer) lostBefore(ctx context.Context, g *gaps, offset int64) *lostRecords {
	if !g.checks {
		return nil
	}
	if g.open == nil && g.next >= 0 && offset > g.next {
		g.open, g.warned = &lostRecords{from: g.next, to: offset}, false
	}
	g.next = offset + 1
	if g.open == nil {
		return nil
	}
	lost, known, more := c.lostIn(ctx, g.tp, *g.open, !g.warned)
	if !known {
		g.warned = true
		return nil
	}
	g.open, g.checks = nil, more
	if lost.n == 0 {
		return nil
	}
	return &lost
}

// lostIn tells how many of the records of gap the topic's retention deleted: those below the
// partition's first record. known is false when the first record cannot be read (the gap is
// to be checked again; warn logs that); more is false when none was deleted, which is then
// compaction or the markers of transactions, and so will come again: the partition's gaps are
// not checked on.
func (c *Consumer) lostIn(ctx context.Context, tp topicPartition, gap lostRecords, warn bool) (lost lostRecords, known, more bool) {
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{tp.topic: {kafka.FirstOffsetOf(tp.partition)}},
	})
	var p kafka.PartitionOffsets
	if err == nil {
		p, err = offsetsOf(resp, tp)
	}
	if err != nil {
		if ctx.Err() == nil && warn {
			c.log.Warn("consume: the reader skipped records, and their partition's first offset cannot be read to tell whether retention deleted them; asking again at each next record",
				"topic", tp.topic, "partition", tp.partition, "from", gap.from, "to", gap.to, "error", err)
		}
		return gap, false, true
	}
	gap.first = p.FirstOffset
	gap.n = max(min(p.FirstOffset, gap.to)-gap.from, 0)
	return gap, true, gap.n > 0
}

// countLost logs and counts records of tp that retention deleted before the group processed
// them.
func (c *Consumer) countLost(tp topicPartition, lost *lostRecords) {
	c.log.Error("consume: records were deleted before the group processed them; reading on from the first that is left",
		"topic", tp.topic, "partition", tp.partition, "offset", lost.from, "first", lost.first, "skipped", lost.n)
	c.cfg.Metrics.skipped.WithLabelValues(c.cfg.Group, tp.topic, strconv.Itoa(tp.partition)).Add(float64(lost.n))
}

// collect waits up to wait for a first message, then takes what has arrived meanwhile and,
// with a Linger, what arrives within it, up to BatchSize. It returns nil when no message came
// within wait, and once the generation has ended: messages not yet started are dropped, and
// the partitions' next owner reads them from the committed offsets.
func (c *Consumer) collect(gctx context.Context, msgs <-chan fetched, wait time.Duration) []fetched {
	var batch []fetched
	idle := time.NewTimer(max(wait, 0))
	defer idle.Stop()
	select {
	case m := <-msgs:
		batch = append(batch, m)
	case <-idle.C:
		return nil
	case <-gctx.Done():
		return nil
	}
	if c.cfg.Linger <= 0 {
		for len(batch) < c.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				return batch
			}
		}
		return batch
	}
	linger := time.NewTimer(c.cfg.Linger)
	defer linger.Stop()
	for len(batch) < c.cfg.BatchSize {
		select {
		case m := <-msgs:
			batch = append(batch, m)
		case <-linger.C:
			return batch
		case <-gctx.Done():
			return nil
		}
	}
	return batch
}

// item is one message of a batch and how far it got.
type item struct {
	raw       kafka.Message
	fetchedAt time.Time    // zero for a message that was not fetched from its topic (a redrive)
	lost      *lostRecords // records before it that retention deleted unread (fetch)
	m         Message
	decodeErr error
	done      bool
	span      trace.Span // from begin to endSpan
	outcome   string     // why its span ends in error, when it was set aside
}

// process handles a batch in lanes and reports whether every message finished. Once the
// generation ends, no lane starts another message, and the handlers of those started get
// DrainTimeout more before their context is cancelled: what the member still does after a
// rebalance is bounded by the messages in flight, not by the batch.
func (c *Consumer) process(ctx, gctx context.Context, batch []fetched, bs *blockSet, pms map[topicPartition]*partitionMetrics) ([]item, bool) {
	items := make([]item, len(batch))
	n := c.cfg.Lanes
	if c.cfg.Unit != nil {
		n = min(n, max(1, len(batch)/c.cfg.MinPerLane))
	}
	lanes := make([][]*item, n)
	for i, m := range batch {
		items[i].raw, items[i].fetchedAt, items[i].lost = m.Message, m.at, m.lost
		l := laneOf(m.Key, n)
		lanes[l] = append(lanes[l], &items[i])
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	finished := make(chan struct{})
	go func() {
		select {
		case <-finished:
		case <-gctx.Done():
			select {
			case <-finished:
			case <-time.After(c.cfg.DrainTimeout):
				c.log.Warn("consume: the batch did not finish within the drain timeout; what is left is delivered again", "timeout", c.cfg.DrainTimeout)
				cancel()
			}
		}
	}()
	var failed atomic.Bool
	var wg conc.WaitGroup
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() {
			if !c.lane(hctx, gctx, lane, bs, pms) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	close(finished)
	return items, !failed.Load()
}

func laneOf(key []byte, lanes int) int {
	if lanes == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write(key)
	return int(h.Sum32() % uint32(lanes))
}

// lane handles a lane's messages in order. It reports false when it stopped before the end
// (a dependency unavailable, the drain timeout, the generation ended); the messages it did
// not finish stay undone.
func (c *Consumer) lane(hctx, gctx context.Context, lane []*item, bs *blockSet, pms map[topicPartition]*partitionMetrics) bool {
	// The streams whose messages go one by one: blocked ones (their messages are parked) and
	// those with a record that could not be decoded (it is dead-lettered and blocks them).
	var slow map[string]bool
	var unavailable error // a dependency of the decoder (the catalog table) that is down
	defer func() {
		for _, it := range lane {
			c.endSpan(it)
		}
	}()
	for _, it := range lane {
		it.m = Message{
			Topic: it.raw.Topic, Partition: it.raw.Partition, Offset: it.raw.Offset,
			Key: it.raw.Key, Value: it.raw.Value, Headers: it.raw.Headers, Time: it.raw.Time,
		}
		if unavailable != nil {
			// The lane stops at the first of these anyway; decoding the rest would wait on the
			// dependency once more for each, past the drain timeout.
			it.decodeErr = unavailable
		} else if it.m.Event, it.decodeErr = c.cfg.Decode(it.raw); IsUnavailable(it.decodeErr) {
			unavailable = it.decodeErr
		}
		c.begin(it)
		if it.decodeErr != nil || bs.has(string(it.raw.Key)) {
			if slow == nil {
				slow = map[string]bool{}
			}
			slow[string(it.raw.Key)] = true
		}
	}
	// The other streams' messages go together in one unit of work: streams are independent,
	// so they need not wait for the slow ones, nor the slow ones for them.
	var batch, alone []*item
	if c.cfg.Unit != nil {
		for _, it := range lane {
			if slow[string(it.raw.Key)] {
				alone = append(alone, it)
			} else {
				batch = append(batch, it)
			}
		}
	}
	if len(batch) < 2 {
		batch, alone = nil, lane
	}
	if len(batch) > 0 {
		if gctx.Err() != nil {
			return false // the partitions may belong to another member already
		}
		// On any failure, every message of the lane again on its own, in order. That holds for
		// a dependency's failure too: what failed may be the batch's size (a statement
		// timeout, the server out of memory), which single messages get past; when the
		// dependency is down, the first message stops the lane.
		err := c.cfg.Unit(hctx, func(uctx context.Context) error {
			for _, it := range batch {
				it.m.Attempt = 1
			}
			if c.batch != nil {
				return c.handleBatch(uctx, batch)
			}
			for _, it := range batch {
				if err := c.h.Handle(trace.ContextWithSpan(uctx, it.span), &it.m); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case err == nil:
			for _, it := range batch {
				c.finished(it, pms)
			}
		case hctx.Err() != nil:
			c.log.Warn("consume: batch stopped", "error", err)
			return false
		default:
			alone = lane
		}
	}
	for _, it := range alone {
		if gctx.Err() != nil {
			return false // no message starts once the generation has ended
		}
		if !c.one(hctx, gctx, it, bs, pms[topicPartition{it.m.Topic, it.m.Partition}]) {
			return false
		}
	}
	return true
}

// handleBatch calls the BatchHandler, turning a panic into an error: the messages are then
// handled one by one, where the panicking one is dead-lettered.
func (c *Consumer) handleBatch(ctx context.Context, lane []*item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch handler panicked: %v", r)
		}
	}()
	ms := make([]*Message, len(lane))
	for i, it := range lane {
		ms[i] = &it.m
	}
	return c.batch.HandleBatch(ctx, ms)
}

func (c *Consumer) finished(it *item, pms map[topicPartition]*partitionMetrics) {
	c.handled(it, pms[topicPartition{it.m.Topic, it.m.Partition}])
}

// handled counts a message the handler finished with, and ends its span.
func (c *Consumer) handled(it *item, pm *partitionMetrics) {
	it.done = true
	pm.processed.Inc()
	if !it.m.Event.RecordedAt.IsZero() {
		pm.age.Observe(time.Since(it.m.Event.RecordedAt).Seconds())
	}
	if !it.fetchedAt.IsZero() {
		c.cfg.Metrics.hops.Observe(hops.FetchToApplied, time.Since(it.fetchedAt))
	}
	c.endSpan(it)
}

// one handles a single message: parks it behind its blocked stream, or tries it up to
// Attempts times and dead-letters it when that fails.
func (c *Consumer) one(hctx, gctx context.Context, it *item, bs *blockSet, pm *partitionMetrics) bool {
	if it.span == nil {
		c.begin(it) // a redriven event, read from the dead-letter topic
	}
	defer c.endSpan(it)
	hctx = trace.ContextWithSpan(hctx, it.span)
	// What the handler and the runtime log about this message carries its event's identity
	// (none for a record that could not be decoded).
	if it.decodeErr == nil {
		hctx = logctx.With(hctx, slog.String("event_id", it.m.Event.EventID.String()),
			slog.String("correlation_id", it.m.Event.CorrelationID))
	}
	if IsQuarantined(it.decodeErr) {
		return c.quarantine(hctx, it, pm)
	}
	if bs.stoppedAt(it.m.Topic, it.m.Partition, it.m.Offset) {
		return true // its partition stopped at an earlier message: left undone, not committed
	}
	key := string(it.m.Key)
	if b, blocked := bs.get(key); blocked && !b.Stopped {
		if b.Topic == it.m.Topic && b.Partition == it.m.Partition && b.Offset == it.m.Offset {
			// The dead letter itself, delivered again: its block was saved but its commit was not.
			return c.deadLetter(hctx, it, b.Reason, 0, pm.dead)
		}
		reason := fmt.Sprintf("parked: stream %s is blocked since %s/%d@%d (event %s): %s",
			key, b.Topic, b.Partition, b.Offset, b.EventID, b.Reason)
		return c.deadLetter(hctx, it, reason, 0, pm.parked)
	}
	if it.decodeErr != nil {
		if IsUnavailable(it.decodeErr) {
			c.log.WarnContext(hctx, "consume: cannot decode the record yet; pausing", "message", it.m.String(), "error", it.decodeErr)
			return false
		}
		if c.cfg.StopOnFailure {
			return c.stopAt(hctx, it, bs, fmt.Sprintf("decode: %v", it.decodeErr), 0)
		}
		return c.poison(hctx, it, bs, fmt.Sprintf("decode: %v", it.decodeErr), 0, pm)
	}
	for attempt := 1; ; attempt++ {
		it.m.Attempt = attempt
		if attempt > 1 {
			pm.retried.Inc()
		}
		var err error
		if c.cfg.Unit != nil {
			err = c.cfg.Unit(hctx, func(uctx context.Context) error { return c.h.Handle(uctx, &it.m) })
		} else {
			err = c.h.Handle(hctx, &it.m)
		}
		if err == nil {
			c.handled(it, pm)
			return true
		}
		it.span.RecordError(err, trace.WithAttributes(attribute.Int("annals.attempt", attempt)))
		if IsUnavailable(err) || hctx.Err() != nil {
			c.log.WarnContext(hctx, "consume: handler stopped", "message", it.m.String(), "error", err)
			return false
		}
		pm.failed.Inc()
		if IsPermanent(err) || attempt >= c.cfg.Attempts {
			if c.cfg.StopOnFailure {
				return c.stopAt(hctx, it, bs, err.Error(), attempt)
			}
			return c.poison(hctx, it, bs, err.Error(), attempt, pm)
		}
		pause := min(c.cfg.Backoff<<(attempt-1), c.cfg.MaxBackoff)
		select {
		case <-time.After(pause):
		case <-gctx.Done():
			return false // the partition may go to another member; it retries from the commit
		case <-hctx.Done():
			return false
		}
	}
}

// poison blocks the message's stream and dead-letters the message.
func (c *Consumer) poison(ctx context.Context, it *item, bs *blockSet, reason string, attempts int, pm *partitionMetrics) bool {
	if key := string(it.m.Key); key != "" {
		b := Block{StreamID: key, EventID: it.m.Event.EventID, Topic: it.m.Topic,
			Partition: it.m.Partition, Offset: it.m.Offset, Reason: reason}
		if err := c.cfg.Blocks.Add(ctx, c.cfg.Group, b); err != nil {
			c.log.WarnContext(ctx, "consume: cannot block the stream", "stream_id", key, "error", err)
			return false
		}
		bs.add(b)
	}
	c.log.ErrorContext(ctx, "consume: dead-lettered", "message", it.m.String(), "event_id", it.m.Event.EventID,
		"type", it.m.Event.Type, "stream_id", string(it.m.Key), "attempts", attempts, "reason", reason)
	return c.deadLetter(ctx, it, reason, attempts, pm.dead)
}

// quarantine sets aside a record the decoder did not take as an event of its stream: to the
// dead-letter topic with its reason, without blocking the stream.
func (c *Consumer) quarantine(ctx context.Context, it *item, pm *partitionMetrics) bool {
	var q *QuarantineError
	errors.As(it.decodeErr, &q)
	c.log.WarnContext(ctx, "consume: quarantined a record that is not an event of its stream", "message", it.m.String(),
		"key", string(it.m.Key), "reason", q.Reason, "error", it.decodeErr)
	it.m.Headers = append(slices.Clip(it.m.Headers), kafka.Header{Key: kafkawire.HeaderQuarantined, Value: []byte(q.Reason)})
	return c.deadLetter(ctx, it, "quarantined: "+it.decodeErr.Error(), 0, pm.quarantined(q.Reason))
}

const maxReasonBytes = 2000

// deadLetter writes the message to the dead-letter topic, with the reason, and marks it done.
func (c *Consumer) deadLetter(ctx context.Context, it *item, reason string, attempts int, counter interface{ Inc() }) bool {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	headers := append(slices.Clip(it.m.Headers),
		kafka.Header{Key: kafkawire.HeaderError, Value: []byte(reason)},
		kafka.Header{Key: kafkawire.HeaderOriginalTopic, Value: []byte(it.m.Topic)},
		kafka.Header{Key: kafkawire.HeaderOriginalPartition, Value: strconv.AppendInt(nil, int64(it.m.Partition), 10)},
		kafka.Header{Key: kafkawire.HeaderOriginalOffset, Value: strconv.AppendInt(nil, it.m.Offset, 10)},
		kafka.Header{Key: kafkawire.HeaderAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
	)
	err := c.dlq.WriteMessages(ctx, kafka.Message{Key: it.m.Key, Value: it.m.Value, Headers: headers, Time: it.m.Time})
	if err != nil {
		if !c.refuse(err, kafkasec.Access{Operation: "Write", Topic: c.cfg.DLQTopic}) {
			c.log.Warn("consume: cannot write to the dead-letter topic", "topic", c.cfg.DLQTopic, "error", err)
		}
		return false
	}
	counter.Inc()
	it.done = true
	it.outcome = "set aside to the dead-letter topic: " + reason
	return true
}

// committable returns, for each partition of the batch, the offset after the last message
// below which every message finished, and moves offsets on to it.
func (c *Consumer) committable(items []item, offsets map[topicPartition]int64) map[topicPartition]int64 {
	next := map[topicPartition]int64{}
	stopped := map[topicPartition]bool{}
	for i := range items {
		tp := topicPartition{items[i].raw.Topic, items[i].raw.Partition}
		if stopped[tp] {
			continue
		}
		if !items[i].done {
			stopped[tp] = true
			continue
		}
		if items[i].lost != nil {
			// Counted once the offset moves past the gap; until then the next session's
			// intoRange would find the offset below the first record and count it.
			c.countLost(tp, items[i].lost)
		}
		next[tp] = items[i].raw.Offset + 1
	}
	for tp, off := range next {
		offsets[tp] = off
	}
	return next
}

// blockSet is the group's blocked streams, shared by the lanes.
type blockSet struct {
	mu sync.Mutex
	m  map[string]Block
}

func (s *blockSet) has(key string) bool {
	_, ok := s.get(key)
	return ok
}

func (s *blockSet) get(key string) (Block, bool) {
	if key == "" {
		return Block{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	return b, ok
}

func (s *blockSet) add(b Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[b.StreamID]; !ok {
		s.m[b.StreamID] = b
	}
}

// put sets the stream's block, replacing the one it had.
func (s *blockSet) put(b Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[b.StreamID] = b
}

func (s *blockSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// replace makes m the blocked streams, and returns those that were blocked before.
func (s *blockSet) replace(m map[string]Block) map[string]Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m
	s.m = m
	return old
}

// stoppedAt reports whether a stopped block holds the partition at or before offset.
func (s *blockSet) stoppedAt(topic string, partition int, offset int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.m {
		if b.Stopped && b.Topic == topic && b.Partition == partition && b.Offset <= offset {
			return true
		}
	}
	return false
}

// stoppedPartitions returns the partitions of offsets that a stopped block holds, at the
// block's offset, and stops fetching them: what is fetched past a failing event is read again
// once it is released. It sets the group's count of stopped partitions.
func (c *Consumer) stoppedPartitions(bs *blockSet, offsets map[topicPartition]int64, stopFetcher map[topicPartition]context.CancelFunc) map[topicPartition]int64 {
	bs.mu.Lock()
	all := map[topicPartition]int64{}
	for _, b := range bs.m {
		if !b.Stopped {
			continue
		}
		tp := topicPartition{b.Topic, b.Partition}
		if off, ok := all[tp]; !ok || b.Offset < off {
			all[tp] = b.Offset
		}
	}
	bs.mu.Unlock()
	c.cfg.Metrics.stopped.WithLabelValues(c.cfg.Group).Set(float64(len(all)))
	owned := map[topicPartition]int64{}
	for tp, off := range all {
		if _, ok := offsets[tp]; ok {
			owned[tp] = off
			if cancel := stopFetcher[tp]; cancel != nil {
				cancel()
			}
		}
	}
	return owned
}

// dropStopped leaves out the messages of stopped partitions from their stop on.
func dropStopped(batch []fetched, stopped map[topicPartition]int64) []fetched {
	if len(stopped) == 0 {
		return batch
	}
	return slices.DeleteFunc(batch, func(m fetched) bool {
		off, ok := stopped[topicPartition{m.Topic, m.Partition}]
		return ok && m.Offset >= off
	})
}

// stopAt stops the message's partition at it (Config.StopOnFailure): its stream gets a stopped
// block, and the message stays undone, so that nothing of its partition is committed past it.
// It reports false when the block could not be saved, which pauses the group as a
// dependency's failure does.
func (c *Consumer) stopAt(ctx context.Context, it *item, bs *blockSet, reason string, attempts int) bool {
	key := string(it.m.Key)
	if key == "" {
		key = fmt.Sprintf("%s/%d@%d", it.m.Topic, it.m.Partition, it.m.Offset)
	}
	b := Block{StreamID: key, EventID: it.m.Event.EventID, Topic: it.m.Topic, Partition: it.m.Partition,
		Offset: it.m.Offset, Reason: stoppedPrefix + reason, Stopped: true}
	if err := c.cfg.Blocks.Add(ctx, c.cfg.Group, b); err != nil {
		c.log.WarnContext(ctx, "consume: cannot record the stopped partition", "stream_id", key, "error", err)
		return false
	}
	bs.add(b)
	c.log.ErrorContext(ctx, "consume: stopped at a failing event; its partition waits for an operator (annals dlq release)",
		"message", it.m.String(), "event_id", it.m.Event.EventID, "type", it.m.Event.Type, "stream_id", key,
		"attempts", attempts, "reason", reason)
	return true
}

// roundLinger is how long a round waits for the first message of its next batch before it
// takes the round to be over.
const roundLinger = 250 * time.Millisecond

// rounds paces a consumer with an Interval: a round starts at most every interval and lasts
// until no message is waiting.
type rounds struct {
	interval time.Duration
	start    time.Time
	on       bool
}

// wait returns how long to wait for messages (due) or, between two rounds, how long to wait
// before looking again (not due), given the time left until the blocks' refresh.
func (r *rounds) wait(refresh time.Duration) (time.Duration, bool) {
	if r.interval <= 0 {
		return refresh, true
	}
	if !r.on {
		if d := time.Until(r.start.Add(r.interval)); d > 0 {
			return max(min(d, refresh), 0), false
		}
		r.start, r.on = time.Now(), true
	}
	return max(min(refresh, roundLinger), 0), true
}

// end ends the round in progress.
func (r *rounds) end() { r.on = false }

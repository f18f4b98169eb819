package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/sourcegraph/conc/iter"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// Encoder turns an event into a Kafka record value. Encoding is deterministic: an error means
// the event can never be published as it is (no schema for its type, data that does not fit
// the schema), so the relay moves its append aside instead of retrying it. The relay calls
// Encode from several goroutines at once.
type Encoder interface {
	Encode(e events.Envelope) (value []byte, contentType string, fingerprint uint64, err error)
}

// Config tunes a Relay. Zero values take the defaults noted.
type Config struct {
	Brokers     []string
	TopicPrefix string // "annals"
	// MaxBatchEvents bounds one publish (5000 events). MaxBatchBytes bounds each partition's
	// share of it (900 KiB), under the broker's batch limit, so that the share is a single
	// produce batch, which the broker appends whole or not at all: a failed publish is
	// retried as a whole and per-stream order holds.
	MaxBatchEvents int
	MaxBatchBytes  int
	// MaxRecordBytes is the largest record the broker takes (message.max.bytes, default
	// 1 MiB); an event whose record is larger is moved aside.
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
	Logger  *slog.Logger
	Metrics *Metrics
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
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 1 << 20
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

	client     *kafka.Client
	partitions map[string][]int // topic -> partition ids, refreshed every publish round that fails
	health     *health
}

// New returns a Relay of the outbox; Run starts it.
func New(o Outbox, enc Encoder, cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("relay: no Kafka brokers")
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
		client:     &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.WriteTimeout, Transport: &kafka.Transport{}},
		partitions: map[string][]int{},
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
func (r *Relay) Run(ctx context.Context) error {
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	var wg sync.WaitGroup
	wg.Go(func() { r.listen(listenCtx) })
	defer wg.Wait()
	for ctx.Err() == nil {
		r.health.waiting()
		if err := r.lead(ctx); err != nil && ctx.Err() == nil {
			r.health.set(Failing, err)
			r.log.Warn("relay: lost its database session; retrying", "error", err)
			r.sleep(ctx, r.cfg.RetryBackoff)
		}
	}
	return nil
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
		case err != nil && sess.Lost():
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

// errPartial: some records of a publish were not acknowledged; they are published again after
// the retry pause.
var errPartial = errors.New("some records were not acknowledged")

// drain publishes one batch and reports how many outbox rows it settled.
func (r *Relay) drain(ctx context.Context, sess outbox.Session) (int, error) {
	batch, err := sess.Pending(ctx, r.cfg.MaxBatchEvents)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	batch = r.inOrder(batch)

	// Encode whole appends: an append with an event that cannot be published is moved aside
	// whole and none of its events is sent. A publish holds whole appends only, and stays
	// within the byte budget that keeps each partition's share one produce batch.
	// Rows are encoded a window at a time, so that a round cut short by the byte budget does
	// not encode the rows it leaves for the next one.
	rows := make([]encodedRow, len(batch))
	var msgs []kafka.Message
	var msgRow []int           // message -> batch row
	var msgPart []partitionKey // message -> partition
	dead := make([]string, len(batch))
	cut := len(batch)
	perPartition := map[partitionKey]int{} // bytes per partition
	for start := 0; start < cut; {
		end, n := start, 0
		for end < len(batch) && (n < encodingWindow || end == start) {
			n += len(batch[end].Events)
			end++
		}
		for i := start; i < end; i++ {
			part, err := r.partitionOf(ctx, kafkawire.Topic(r.cfg.TopicPrefix, batch[i].Category), batch[i].StreamID)
			if err != nil {
				return 0, err
			}
			rows[i].part = part
		}
		r.encodeRows(batch[start:end], rows[start:end], n)
		for i := start; i < end; i++ {
			row := &rows[i]
			if row.dead != "" {
				dead[i] = row.dead
				continue
			}
			if perPartition[row.part]+row.bytes > r.cfg.MaxBatchBytes && len(msgs) > 0 {
				cut = i // this append and the rest wait for the next round
				break
			}
			perPartition[row.part] += row.bytes
			for _, m := range row.msgs {
				msgs = append(msgs, m)
				msgRow = append(msgRow, i)
				msgPart = append(msgPart, row.part)
			}
		}
		start = end
	}

	failed := map[int]bool{} // batch rows with a record that was not acknowledged
	var writeErr error
	if len(msgs) > 0 {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
		failedParts, err := r.produce(wctx, msgs, msgPart)
		writeErr = err
		cancel()
		ackedAt := time.Now()
		if len(failedParts) == len(perPartition) && err != nil {
			clear(r.partitions) // the topics may have changed
			return 0, fmt.Errorf("publish %d records: %w", len(msgs), err)
		}
		for j := range msgs {
			if failedParts[msgPart[j]] {
				failed[msgRow[j]] = true
			}
		}
		published := 0
		for j := range msgs {
			if !failed[msgRow[j]] {
				published++
				r.m.latency.Observe(ackedAt.Sub(msgs[j].Time).Seconds())
			}
		}
		r.m.published.Add(float64(published))
		r.m.batch.Observe(float64(len(msgs)))
	}
	var settled []outbox.Settlement
	for i, a := range batch[:cut] {
		if failed[i] {
			continue
		}
		if dead[i] != "" {
			r.m.dead.Inc()
			r.log.Error("relay: moved an append aside to annals_outbox_dead", "stream_id", a.StreamID,
				"first_version", a.FirstVersion, "last_version", a.LastVersion, "error", dead[i])
		}
		settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion, Reason: dead[i]})
	}
	if err := sess.Settle(ctx, settled); err != nil {
		return 0, err
	}
	if len(failed) > 0 {
		return len(settled), fmt.Errorf("%w (%d appends): %v", errPartial, len(failed), writeErr)
	}
	return len(settled), nil
}

// encodedRow is an outbox row's records, or why it cannot be published.
type encodedRow struct {
	part  partitionKey
	msgs  []kafka.Message
	bytes int
	dead  string
}

// parallelEncoding is the number of events from which a window's encoding is spread over
// the cores. Encoding is most of a large round's CPU, and the database and the broker wait
// meanwhile; a round of a few events is not worth the goroutines. encodingWindow is how many
// events are encoded before the byte budget is checked again.
const (
	parallelEncoding = 256
	encodingWindow   = 1024
)

// encodeRows encodes the events of each batch row, n in all, into rows[i].msgs, or says in
// rows[i].dead why the row cannot be published.
func (r *Relay) encodeRows(batch []outbox.Append, rows []encodedRow, n int) {
	encode := func(i int) {
		row := &rows[i]
		for _, e := range batch[i].Events {
			value, contentType, fp, err := r.enc.Encode(e)
			if err != nil {
				row.dead = err.Error()
				return
			}
			m := r.message(e, value, contentType, fp)
			size := recordSize(m)
			if size > r.cfg.MaxRecordBytes {
				row.dead = fmt.Sprintf("record of %d bytes (value %d) is over the broker's limit of %d (event %s, %s@%d)",
					size, len(value), r.cfg.MaxRecordBytes, e.EventID, e.StreamID, e.Version)
				return
			}
			row.msgs = append(row.msgs, m)
			row.bytes += size
		}
	}
	if n < parallelEncoding {
		for i := range batch {
			encode(i)
		}
		return
	}
	iter.ForEachIdx(rows, func(i int, _ *encodedRow) { encode(i) })
}

type partitionKey struct {
	topic     string
	partition int
}

// partitionOf is the partition the writer's murmur2 balancer puts a key in.
func (r *Relay) partitionOf(ctx context.Context, topic, key string) (partitionKey, error) {
	parts, ok := r.partitions[topic]
	if !ok {
		meta, err := r.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return partitionKey{}, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		for _, t := range meta.Topics {
			if t.Error != nil {
				return partitionKey{}, fmt.Errorf("metadata of %s: %w", topic, t.Error)
			}
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
		if len(parts) == 0 {
			return partitionKey{}, fmt.Errorf("topic %s has no partitions", topic)
		}
		slices.Sort(parts)
		r.partitions[topic] = parts
	}
	return partitionKey{topic, r.balancer.Balance(kafka.Message{Key: []byte(key)}, parts...)}, nil
}

// produce sends each partition's records as one produce request, all partitions at once, and
// reports the partitions whose request failed (their records may or may not have landed: the
// rows stay in the outbox and are published again).
//
// kafka-go's Writer is not used: it waits out its BatchTimeout on every partition of every
// call, and may split one partition's share over several batches, the later of which can land
// after the earlier one failed. Here acks (all in-sync replicas) and the partitioner (murmur2,
// as the Java clients) are set explicitly, and there is no batch timer.
func (r *Relay) produce(ctx context.Context, msgs []kafka.Message, parts []partitionKey) (map[partitionKey]bool, error) {
	byPart := map[partitionKey][]kafka.Record{}
	var order []partitionKey
	for j, m := range msgs {
		p := parts[j]
		if _, ok := byPart[p]; !ok {
			order = append(order, p)
		}
		byPart[p] = append(byPart[p], kafka.Record{
			Time: m.Time, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers,
		})
	}
	var mu sync.Mutex
	failed := map[partitionKey]bool{}
	var errs []error
	var wg sync.WaitGroup
	for _, p := range order {
		wg.Go(func() {
			res, err := r.client.Produce(ctx, &kafka.ProduceRequest{
				Topic: p.topic, Partition: p.partition, RequiredAcks: kafka.RequireAll,
				Records: kafka.NewRecordReader(byPart[p]...),
			})
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err == nil && len(res.RecordErrors) > 0 {
				err = fmt.Errorf("%d records refused", len(res.RecordErrors))
			}
			if err != nil {
				mu.Lock()
				failed[p] = true
				errs = append(errs, fmt.Errorf("%s[%d]: %w", p.topic, p.partition, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed, errors.Join(errs...)
}

// recordSize is what a record counts against the broker's limits: value, key, headers and
// the record's own overhead (at most about 30 bytes of varints and attributes).
func recordSize(m kafka.Message) int {
	n := len(m.Value) + len(m.Key) + 32
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// inOrder keeps, for each stream, the appends that continue it without a gap from its oldest
// pending append, in version order (the batch comes sorted by stream and version), within the
// batch's event budget.
//
// A committed append's earlier versions are always committed too (an append of version v+1
// needs version v to exist, and the unique (stream_id, version) index makes a racing append
// wait for the other's commit), so the oldest pending append this relay can see is the
// stream's next one. A stream's later append can still be older by transaction id than an
// earlier one (a transaction that wrote elsewhere first, then waited for the earlier
// version); it waits here until the earlier one is published.
func (r *Relay) inOrder(batch []outbox.Append) []outbox.Append {
	out := batch[:0]
	next := map[string]int64{}
	n := 0
	for _, a := range batch {
		want, seen := next[a.StreamID]
		if !seen {
			want = a.Head
		}
		if a.FirstVersion != want || int64(len(a.Events)) != a.LastVersion-a.FirstVersion+1 {
			next[a.StreamID] = -1 // a gap: the rest of this stream waits
			continue
		}
		if n+len(a.Events) > r.cfg.MaxBatchEvents && n > 0 {
			next[a.StreamID] = -1
			continue
		}
		n += len(a.Events)
		next[a.StreamID] = a.LastVersion + 1
		out = append(out, a)
	}
	return out
}

func (r *Relay) message(e events.Envelope, value []byte, contentType string, fp uint64) kafka.Message {
	m := kafka.Message{
		Topic: kafkawire.Topic(r.cfg.TopicPrefix, e.Category),
		Key:   []byte(e.StreamID),
		Value: value,
		Time:  e.RecordedAt,
		Headers: []kafka.Header{
			{Key: kafkawire.HeaderEventID, Value: []byte(e.EventID.String())},
			{Key: kafkawire.HeaderEventType, Value: []byte(e.Type)},
			{Key: kafkawire.HeaderStreamVersion, Value: strconv.AppendInt(nil, e.Version, 10)},
			{Key: kafkawire.HeaderGlobalPosition, Value: strconv.AppendInt(nil, e.GlobalPosition, 10)},
			{Key: kafkawire.HeaderCorrelationID, Value: []byte(e.CorrelationID)},
			{Key: kafkawire.HeaderCausationID, Value: []byte(e.CausationID)},
			{Key: kafkawire.HeaderRecordedAt, Value: []byte(e.RecordedAt.Format(time.RFC3339Nano))},
			{Key: kafkawire.HeaderContentType, Value: []byte(contentType)},
			{Key: kafkawire.HeaderFingerprint, Value: fmt.Appendf(nil, "%016x", fp)},
		},
	}
	if len(e.Metadata) > 0 {
		md, _ := json.Marshal(e.Metadata) // a map of strings always marshals
		m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderMetadata, Value: md})
	}
	return m
}

// observe refreshes the backlog gauges.
func (r *Relay) observe(ctx context.Context, sess outbox.Session) {
	b, err := sess.Backlog(ctx)
	if err != nil {
		r.log.Debug("relay: backlog query failed", "error", err)
		return
	}
	r.m.backlog.Set(float64(b.Appends))
	r.m.oldest.Set(b.OldestAppend.Seconds())
	r.m.oldestTx.Set(b.OldestTransaction.Seconds())
}

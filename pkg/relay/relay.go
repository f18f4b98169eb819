package relay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Encoder turns an event into a Kafka record value. Encoding is deterministic: an error means
// the event can never be published as it is (no schema for its type, data that does not fit
// the schema), so the relay moves its append aside instead of retrying it.
type Encoder interface {
	Encode(e events.Envelope) (value []byte, contentType string, fingerprint uint64, err error)
}

// Header names of every published record.
const (
	HeaderEventID        = "event-id"
	HeaderEventType      = "event-type"
	HeaderStreamVersion  = "stream-version"
	HeaderGlobalPosition = "global-position"
	HeaderCorrelationID  = "correlation-id"
	HeaderCausationID    = "causation-id"
	HeaderRecordedAt     = "recorded-at"
	HeaderContentType    = "content-type"
	HeaderFingerprint    = "schema-fingerprint"
)

// Config tunes a Relay. Zero values take the defaults noted.
type Config struct {
	Brokers     []string
	TopicPrefix string // "annals"
	// MaxBatchEvents and MaxBatchBytes bound one publish. They are kept under the broker's
	// batch limit so that each partition's share of a publish is a single produce batch,
	// which the broker appends whole or not at all: a failed publish is retried as a whole
	// and per-stream order holds. Defaults 1000 events and 900 KiB.
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
		c.MaxBatchEvents = 1000
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
	pool   *pgxpool.Pool
	enc    Encoder
	cfg    Config
	writer *kafka.Writer
	wake   chan struct{}
	log    *slog.Logger
	m      *Metrics
}

// New returns a Relay; Run starts it.
func New(pool *pgxpool.Pool, enc Encoder, cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("relay: no Kafka brokers")
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Relay{
		pool: pool,
		enc:  enc,
		cfg:  cfg,
		// kafka-go's zero Writer sends without acks, round-robin, and waits a second per
		// batch: each of those is set here on purpose.
		writer: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Balancer:     &kafka.Murmur2Balancer{}, // where the Java clients put a key
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond,
			BatchSize:    cfg.MaxBatchEvents,
			BatchBytes:   int64(cfg.MaxRecordBytes),
			MaxAttempts:  3,
			WriteTimeout: cfg.WriteTimeout,
			Compression:  0,
		},
		wake: make(chan struct{}, 1),
		log:  cfg.Logger,
		m:    m,
	}, nil
}

// Wake makes an idle relay look at the outbox now. It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close releases the Kafka writer.
func (r *Relay) Close() error { return r.writer.Close() }

// Run publishes until ctx ends. Among relays sharing a database, one at a time holds the
// advisory lock and publishes; the others wait to take over. It returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	var wg sync.WaitGroup
	wg.Go(func() { r.listen(listenCtx) })
	defer wg.Wait()
	for ctx.Err() == nil {
		if err := r.lead(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("relay: lost its database session; retrying", "error", err)
			r.sleep(ctx, r.cfg.RetryBackoff)
		}
	}
	return nil
}

// lead takes a connection, waits for the advisory lock on it, and then publishes through that
// same connection: if it breaks, the lock goes with it and this relay stops publishing.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `select pg_try_advisory_lock($1)`, r.cfg.LockKey).Scan(&got); err != nil {
			conn.Conn().Close(context.Background()) // a session with an unknown lock state is not reused
			return err
		}
		if got {
			break
		}
		r.m.leader.Set(0)
		if !r.sleep(ctx, 10*r.cfg.PollInterval) {
			return nil
		}
	}
	defer func() {
		r.m.leader.Set(0)
		// Ending the session is the surest way to drop the lock, even mid-error.
		conn.Conn().Close(context.Background())
	}()
	r.m.leader.Set(1)
	r.log.Info("relay: publishing (holds the relay lock)")

	statsEvery := time.NewTicker(5 * time.Second)
	defer statsEvery.Stop()
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	r.observe(ctx, conn.Conn())
	for {
		n, err := r.drain(ctx, conn.Conn())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && conn.Conn().IsClosed():
			return err
		case err != nil:
			r.m.errors.Inc()
			r.log.Warn("relay: publish failed; retrying", "error", err)
			if !r.sleep(ctx, r.cfg.RetryBackoff) {
				return nil
			}
			continue
		case n > 0:
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-poll.C:
		case <-statsEvery.C:
			r.observe(ctx, conn.Conn())
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
		conn, err := r.pool.Acquire(ctx)
		if err != nil {
			r.sleep(ctx, r.cfg.RetryBackoff)
			continue
		}
		_, err = conn.Exec(ctx, "listen "+postgres.OutboxChannel)
		for err == nil {
			_, err = conn.Conn().WaitForNotification(ctx)
			if err == nil {
				r.Wake()
			}
		}
		// The session may still be listening; do not hand it to anyone else.
		conn.Conn().Close(context.Background())
		conn.Release()
		if ctx.Err() == nil {
			r.sleep(ctx, r.cfg.RetryBackoff)
		}
	}
}

// pending is one outbox row: one append's version range of one stream.
type pending struct {
	stream      string
	first, last int64
	category    string
	types       []string
	createdAt   time.Time
}

// drain publishes one batch and reports how many outbox rows it settled.
func (r *Relay) drain(ctx context.Context, conn *pgx.Conn) (int, error) {
	// Every committed row this query can see, oldest transaction first. Rows are deleted one
	// by one once published, and no high-water mark is kept: a row whose transaction commits
	// late, with a lower position than rows already published, is simply read by a later
	// round. Nothing is skipped, and an open transaction holds nothing back.
	rows, err := conn.Query(ctx, `select stream_id, first_version, last_version, category, types, created_at
		from annals_outbox order by tx_id limit $1`, r.cfg.MaxBatchEvents)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var batch []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.stream, &p.first, &p.last, &p.category, &p.types, &p.createdAt); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	batch, err = r.inOrder(ctx, conn, batch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	evs, err := r.readEvents(ctx, conn, batch)
	if err != nil {
		return 0, err
	}

	// Encode; an append with an event that cannot be encoded is moved aside whole.
	msgs := make([]kafka.Message, 0, len(evs))
	dead := map[[2]any]string{}
	msgRow := make([]int, 0, len(evs)) // message index -> batch row
	bytes := 0
	rowOf := rowIndex(batch)
	var settled []int // batch rows to settle
	cut := len(batch)
	for _, e := range evs {
		i := rowOf[key(e.StreamID, e.Version)]
		if i >= cut {
			continue
		}
		k := [2]any{batch[i].stream, batch[i].first}
		if _, isDead := dead[k]; isDead {
			continue
		}
		value, contentType, fp, err := r.enc.Encode(e)
		if err == nil && len(value)+len(e.StreamID)+512 > r.cfg.MaxRecordBytes {
			err = fmt.Errorf("record of %d bytes is over the broker's limit of %d (event %s, %s@%d)",
				len(value), r.cfg.MaxRecordBytes, e.EventID, e.StreamID, e.Version)
		}
		if err != nil {
			dead[k] = err.Error()
			continue
		}
		if bytes+len(value) > r.cfg.MaxBatchBytes && len(msgs) > 0 {
			// Publish what fits; the rest of the batch waits for the next round, whole
			// appends only.
			cut = i
			continue
		}
		bytes += len(value)
		msgs = append(msgs, r.message(e, value, contentType, fp))
		msgRow = append(msgRow, i)
	}
	// Messages of rows beyond the cut (a row cut part-way) are not sent.
	n := 0
	for j, i := range msgRow {
		if i < cut {
			msgs[n], msgRow[n] = msgs[j], i
			n++
		}
	}
	msgs, msgRow = msgs[:n], msgRow[:n]

	failed := map[int]bool{} // batch rows with a message that did not make it
	if len(msgs) > 0 {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
		err := r.writer.WriteMessages(wctx, msgs...)
		cancel()
		ackedAt := time.Now()
		var werrs kafka.WriteErrors
		switch {
		case errors.As(err, &werrs):
			for j, e := range werrs {
				if e != nil {
					failed[msgRow[j]] = true
				}
			}
		case err != nil:
			return 0, fmt.Errorf("publish %d records: %w", len(msgs), err)
		}
		for j := range msgs {
			if !failed[msgRow[j]] {
				r.m.latency.Observe(ackedAt.Sub(msgs[j].Time).Seconds())
			}
		}
		if len(failed) > 0 {
			r.m.errors.Inc()
			r.log.Warn("relay: some records were not acknowledged; they will be published again",
				"failed_appends", len(failed), "error", err)
		}
	}
	errs := make([]string, 0, cut)
	for i := range batch[:cut] {
		if failed[i] {
			continue
		}
		k := [2]any{batch[i].stream, batch[i].first}
		reason := dead[k]
		if reason != "" {
			r.m.dead.Inc()
			r.log.Error("relay: moved an append aside to annals_outbox_dead", "stream_id", batch[i].stream,
				"first_version", batch[i].first, "last_version", batch[i].last, "error", reason)
		}
		settled = append(settled, i)
		errs = append(errs, reason)
	}
	if err := r.settle(ctx, conn, batch, settled, errs); err != nil {
		return 0, err
	}
	r.m.published.Add(float64(len(msgs) - countFailed(msgRow, failed)))
	r.m.batch.Observe(float64(len(msgs)))
	return len(settled), nil
}

func countFailed(msgRow []int, failed map[int]bool) int {
	n := 0
	for _, i := range msgRow {
		if failed[i] {
			n++
		}
	}
	return n
}

func key(stream string, version int64) string {
	return stream + "\x00" + strconv.FormatInt(version, 10)
}

// rowIndex maps every (stream, version) of the batch to its row.
func rowIndex(batch []pending) map[string]int {
	m := map[string]int{}
	for i, p := range batch {
		for v := p.first; v <= p.last; v++ {
			m[key(p.stream, v)] = i
		}
	}
	return m
}

// inOrder keeps, for each stream, the rows that continue it without a gap from its oldest
// pending append, in version order; the batch comes back sorted by stream and version.
//
// A committed append's earlier versions are always committed too (an append of version v+1
// needs version v to exist, and the unique (stream_id, version) index makes a racing append
// wait for the other's commit), so the oldest pending row this relay can see is the stream's
// next one. A stream's later append can still be older by transaction id than an earlier one
// (a transaction that wrote elsewhere first, then waited for the earlier version); it waits
// here until the earlier one is published.
func (r *Relay) inOrder(ctx context.Context, conn *pgx.Conn, batch []pending) ([]pending, error) {
	streams := make([]string, 0, len(batch))
	for _, p := range batch {
		streams = append(streams, p.stream)
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)
	rows, err := conn.Query(ctx, `select stream_id, min(first_version) from annals_outbox
		where stream_id = any($1) group by stream_id`, streams)
	if err != nil {
		return nil, fmt.Errorf("read outbox heads: %w", err)
	}
	next := map[string]int64{}
	for rows.Next() {
		var s string
		var v int64
		if err := rows.Scan(&s, &v); err != nil {
			rows.Close()
			return nil, err
		}
		next[s] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(batch, func(a, b pending) int {
		if c := cmpString(a.stream, b.stream); c != 0 {
			return c
		}
		return int(a.first - b.first)
	})
	out := batch[:0]
	events := 0
	for _, p := range batch {
		if want, ok := next[p.stream]; !ok || p.first != want {
			continue
		}
		count := int(p.last - p.first + 1)
		if events+count > r.cfg.MaxBatchEvents && events > 0 {
			continue
		}
		events += count
		next[p.stream] = p.last + 1
		out = append(out, p)
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

const envelopeColumns = `e.event_id, e.stream_id, e.category, e.version, e.global_position, e.type, e.schema_version,
	e.data, e.metadata, coalesce(e.correlation_id, ''), coalesce(e.causation_id, ''), e.recorded_at`

// readEvents reads the events of the batch's rows with one query, in stream and version
// order.
func (r *Relay) readEvents(ctx context.Context, conn *pgx.Conn, batch []pending) ([]events.Envelope, error) {
	streams := make([]string, len(batch))
	firsts := make([]int64, len(batch))
	lasts := make([]int64, len(batch))
	for i, p := range batch {
		streams[i], firsts[i], lasts[i] = p.stream, p.first, p.last
	}
	rows, err := conn.Query(ctx, `select `+envelopeColumns+`
		from unnest($1::text[], $2::bigint[], $3::bigint[]) as r(s, f, l)
		join annals_events e on e.stream_id = r.s and e.version between r.f and r.l
		order by e.stream_id, e.version`, streams, firsts, lasts)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []events.Envelope
	for rows.Next() {
		var e events.Envelope
		var data, meta []byte
		if err := rows.Scan(&e.EventID, &e.StreamID, &e.Category, &e.Version, &e.GlobalPosition, &e.Type,
			&e.SchemaVersion, &data, &meta, &e.CorrelationID, &e.CausationID, &e.RecordedAt); err != nil {
			return nil, err
		}
		e.Data, e.RecordedAt = data, e.RecordedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

func (r *Relay) message(e events.Envelope, value []byte, contentType string, fp uint64) kafka.Message {
	return kafka.Message{
		Topic: r.cfg.TopicPrefix + "." + e.Category,
		Key:   []byte(e.StreamID),
		Value: value,
		Time:  e.RecordedAt,
		Headers: []kafka.Header{
			{Key: HeaderEventID, Value: []byte(e.EventID.String())},
			{Key: HeaderEventType, Value: []byte(e.Type)},
			{Key: HeaderStreamVersion, Value: strconv.AppendInt(nil, e.Version, 10)},
			{Key: HeaderGlobalPosition, Value: strconv.AppendInt(nil, e.GlobalPosition, 10)},
			{Key: HeaderCorrelationID, Value: []byte(e.CorrelationID)},
			{Key: HeaderCausationID, Value: []byte(e.CausationID)},
			{Key: HeaderRecordedAt, Value: []byte(e.RecordedAt.Format(time.RFC3339Nano))},
			{Key: HeaderContentType, Value: []byte(contentType)},
			{Key: HeaderFingerprint, Value: fmt.Appendf(nil, "%016x", fp)},
		},
	}
}

// settle removes the published rows and moves the dead ones aside, counting their events for
// the statistics, all in one statement.
func (r *Relay) settle(ctx context.Context, conn *pgx.Conn, batch []pending, rows []int, errs []string) error {
	if len(rows) == 0 {
		return nil
	}
	streams := make([]string, len(rows))
	firsts := make([]int64, len(rows))
	for j, i := range rows {
		streams[j], firsts[j] = batch[i].stream, batch[i].first
	}
	_, err := conn.Exec(ctx, `with r as (
			select * from unnest($1::text[], $2::bigint[], $3::text[]) as r(s, f, err)
		),
		d as (
			delete from annals_outbox o using r where o.stream_id = r.s and o.first_version = r.f
			returning o.stream_id, o.first_version, o.last_version, o.category, o.types, o.created_at, r.err
		),
		dead as (
			insert into annals_outbox_dead (stream_id, first_version, last_version, category, types, error, created_at)
			select stream_id, first_version, last_version, category, types, err, created_at from d where err <> ''
		)
		insert into annals_counters (name, value)
		select name, count(*) from (
			select 'type:' || t as name from d, unnest(d.types) as t
			union all
			select 'streams' from d where d.first_version = 0
		) c group by name
		on conflict (name) do update set value = annals_counters.value + excluded.value`, streams, firsts, errs)
	if err != nil {
		return fmt.Errorf("settle %d outbox rows: %w", len(rows), err)
	}
	return nil
}

// observe refreshes the backlog gauges.
func (r *Relay) observe(ctx context.Context, conn *pgx.Conn) {
	var rows int64
	var oldest, holder float64
	err := conn.QueryRow(ctx, `select count(*),
			coalesce(extract(epoch from clock_timestamp() - min(created_at)), 0),
			(select coalesce(extract(epoch from clock_timestamp() - min(xact_start)), 0) from pg_stat_activity
			 where pid <> pg_backend_pid() and (backend_xid is not null or backend_xmin is not null))
		from annals_outbox`).Scan(&rows, &oldest, &holder)
	if err != nil {
		r.log.Debug("relay: backlog query failed", "error", err)
		return
	}
	r.m.backlog.Set(float64(rows))
	r.m.oldest.Set(oldest)
	r.m.oldestTx.Set(holder)
}

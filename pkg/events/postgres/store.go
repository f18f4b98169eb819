package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/hops"
)

// Options tune a Store.
type Options struct {
	// DisableOptimisticConcurrency ignores expected versions: every append goes to the end of
	// its stream (still without gaps or duplicate versions). OPTIMISTIC_CONCURRENCY=false.
	DisableOptimisticConcurrency bool
	// MaxEventsPerStream refuses appends that would take a stream past this many events
	// (MAX_EVENTS_PER_AGGREGATE); 0 means no limit.
	MaxEventsPerStream int
	// MaxEventBytes refuses appends with an event larger than this many bytes of data and
	// metadata (events.Event.Size) with an *events.TooLargeError, before anything is written
	// (MAX_EVENT_BYTES); 0 means no limit. A limit under the broker's record size keeps every
	// event publishable.
	MaxEventBytes int
	// Notify makes every append send NOTIFY on OutboxChannel, to wake relays running in other
	// processes at once rather than at their next poll. It is off by default: a transaction
	// with a pending notification takes a global lock at commit, which serialises concurrent
	// appends (measured here: 8 concurrent single-event appenders lose more than half their
	// throughput). A relay in the same process is woken through OnAppend instead.
	Notify bool
	// OnAppend, when set, is called once appended events are committed, for example to wake
	// the relay of the same process. It must not block. Append calls it after its statement;
	// AppendTx does not, because the caller's transaction has not committed yet and a relay
	// woken then finds nothing and sleeps until its next poll: InTx calls it once its
	// transaction has committed, and a caller that commits a transaction of its own calls
	// Wake.
	OnAppend func()
	// Metrics, when set, count appends by result and time them.
	Metrics *Metrics
	// Tracing gives every append a span, a child of the caller's, and writes that span's W3C
	// trace context into the metadata of each event it appends (traceparent, and a short
	// tracestate; hops.TraceMetadata), unless the event's metadata has a traceparent already.
	// The relay publishes each record in that trace, however much later and from whichever
	// process. The trace context is not counted against MaxEventBytes. The zero value uses
	// OpenTelemetry's global provider and propagator: nothing is written until a program sets
	// them.
	Tracing hops.Tracing
}

// OutboxChannel is the LISTEN/NOTIFY channel on which appends wake the relay.
const OutboxChannel = "annals_outbox"

// Store is the PostgreSQL event store.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// appendSQL[mode][one] is the statement of an append in an expected-version mode (the
	// order of bases), of several events or of one.
	appendSQL [len(bases)][2]string
	// head is the highest head of the all-stream read so far (all.go).
	head atomic.Int64
}

var _ events.Store = (*Store)(nil)

// New returns a Store on pool. The schema must be migrated (Migrate).
func New(pool *pgxpool.Pool, opts Options) *Store {
	s := &Store{pool: pool, opts: opts, tracer: opts.Tracing.Tracer(tracerScope), prop: opts.Tracing.TextMapPropagator()}
	notify := ""
	if opts.Notify {
		notify = "\ncross join (select pg_notify('" + OutboxChannel + "', '')) as wake"
	}
	for mode, base := range bases {
		// An append that expects an exact version continues an existing stream, so its
		// statement leaves the streams table alone.
		many, one := createStream, createStreamOne
		if mode == modeExact {
			many, one = "", ""
		}
		s.appendSQL[mode][0] = fmt.Sprintf(appendMany, base, many, notify)
		s.appendSQL[mode][1] = fmt.Sprintf(appendOne, base, one, notify)
	}
	return s
}

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Append appends events to the stream in one statement, which is one transaction: all of
// them with their outbox row, or nothing. With opts.Idempotency it records the key in
// annals_idempotency in the same transaction (see events.IdempotencyStore).
func (s *Store) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	var res events.AppendResult
	var err error
	if opts.Idempotency == nil {
		res, err = s.appendOn(ctx, s.pool, streamID, expected, evs, opts)
	} else {
		var appended error
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			res, appended = s.appendIdempotent(ctx, tx, streamID, expected, evs, opts)
			return appended
		})
		if err != nil && appended == nil {
			err = fmt.Errorf("append %s: %w", streamID, err) // begin or commit
		}
	}
	if err == nil {
		s.Wake()
	}
	return res, err
}

// AppendTx appends inside the caller's transaction, so that other rows (an idempotency
// record, a read model) commit or roll back with the events. The append runs in a savepoint:
// after a refusal (a version conflict, a full stream, bad input) the transaction is still
// usable, and nothing of the append remains in it. It does not call Options.OnAppend: see
// InTx and Wake. With opts.Idempotency it records the key in the transaction too; a key
// recorded before gives ErrIdempotencyKeyTaken and leaves the transaction aborted.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	if opts.Idempotency != nil {
		return s.appendIdempotent(ctx, tx, streamID, expected, evs, opts)
	}
	return s.appendOn(ctx, tx, streamID, expected, evs, opts)
}

// Wake calls Options.OnAppend, if set: the caller has committed a transaction in which it
// appended with AppendTx.
func (s *Store) Wake() {
	if s.opts.OnAppend != nil {
		s.opts.OnAppend()
	}
}

// TxAppender is an events.Appender bound to a transaction.
type TxAppender struct {
	Store *Store
	Tx    pgx.Tx
}

// Append appends inside the transaction.
func (a TxAppender) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	return a.Store.AppendTx(ctx, a.Tx, streamID, expected, evs, opts)
}

// Each expected-version mode has its own base: the stream's version before the append, as one
// row, or no row when the expectation (or the maximum length) does not hold. The unique index
// on (stream_id, version) makes this exact under concurrency: of two appenders that read the
// same base, the second waits for the first to commit and then fails on the duplicate
// version, without writing anything.
const (
	baseAny = `select coalesce(max(version), -1) as v from annals_events where stream_id = $1
	having coalesce(max(version), -1) + $3::int < $5::bigint`
	baseNoStream     = `select -1::bigint as v where -1 + $3::int < $5::bigint`
	baseStreamExists = `select max(version) as v from annals_events where stream_id = $1
	having max(version) is not null and max(version) + $3::int < $5::bigint`
	baseExact = `select $4::bigint as v
	where exists (select 1 from annals_events where stream_id = $1 and version = $4::bigint) and $4::bigint + $3::int < $5::bigint`
)

// The bases by mode, in the order of the modes.
var bases = [...]string{modeAny: baseAny, modeNoStream: baseNoStream, modeStreamExists: baseStreamExists, modeExact: baseExact}

const (
	modeAny = iota
	modeNoStream
	modeStreamExists
	modeExact
)

// appendMany inserts the events, which come as arrays with one element per event, after the
// fence (see all.go) and the base version, the stream's row when the append creates it and
// the append's outbox row, all in one statement.
const appendMany = `with ` + fenceCTE + `,
b as (%s),
ev as (
	insert into annals_events (event_id, stream_id, category, version, type, schema_version, data, metadata,
		correlation_id, causation_id, recorded_at)
	select u.id, $1, $2, b.v + u.ord, u.type, u.sv, u.data::json, u.meta::json,
		nullif($10, ''), nullif($11, ''), clock_timestamp()
	from fence, b, unnest($6::uuid[], $7::text[], $8::int[], $9::text[], $12::text[]) with ordinality as u(id, type, sv, data, meta, ord)
	returning global_position, version, recorded_at
),
%sob as (
	insert into annals_outbox (stream_id, first_version, last_version, category, types)
	select $1, b.v + 1, b.v + $3, $2, $7::text[] from b
)
select min(global_position), max(global_position), min(version), max(version), max(recorded_at), count(*)
from ev%s
-- Not every base uses $4 and $5; naming their types here keeps one parameter list.
where $4::bigint is not null and $5::bigint is not null
having count(*) > 0`

// appendOne is appendMany for the most common append, of a single event, whose fields come
// as plain values: encoding five one-element arrays costs the client more than the
// database's whole insert. Its plan joins nothing but the fence's one row, and has no common
// table for the base and no aggregate, which spares the server a sixth of its work per append.
const appendOne = `with ` + fenceCTE + `,
ev as (
	insert into annals_events (event_id, stream_id, category, version, type, schema_version, data, metadata,
		correlation_id, causation_id, recorded_at)
	select $6::uuid, $1, $2, b.v + 1, $7::text, $8::int, $9::text::json, $12::text::json,
		nullif($10, ''), nullif($11, ''), clock_timestamp()
	from fence, (%s) b
	returning global_position, version, recorded_at
),
%sob as (
	insert into annals_outbox (stream_id, first_version, last_version, category, types)
	select $1, version, version, $2, array[$7::text] from ev
)
select global_position, global_position, version, version, recorded_at, 1::bigint
from ev%s
where $3::int = 1 and $4::bigint is not null and $5::bigint is not null`

// The stream's row, written by the append that creates the stream.
const (
	createStream = `st as (
	insert into annals_streams (stream_id, category) select $1, $2 from b where b.v = -1
	on conflict do nothing
),
`
	createStreamOne = `st as (
	insert into annals_streams (stream_id, category) select $1, $2 from ev where ev.version = 0
	on conflict do nothing
),
`
)

// maxRetries bounds how often an append with expected version any (or stream_exists) retries
// after losing a race for the next version of its stream. Retries after the first wait a
// random pause that doubles up to 20 ms, so that writers hammering one stream spread out
// instead of colliding again.
const maxRetries = 50

// tracerScope is the instrumentation scope of the store's spans.
const tracerScope = "github.com/annals-dev/annals/pkg/events/postgres"

func (s *Store) appendOn(ctx context.Context, q querier, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, "append "+events.Category(streamID), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationName("append"),
			semconv.DBCollectionName("annals_events"), attribute.String("annals.stream_id", streamID),
			attribute.Int("annals.events", len(evs)), attribute.String("annals.expected_version", expected.String())))
	defer span.End()
	res, err := s.appendEvents(ctx, q, streamID, expected, evs, opts)
	s.opts.Metrics.appended(len(evs), time.Since(start), err)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else if span.IsRecording() {
		span.SetAttributes(attribute.Int64("annals.first_version", res.FirstVersion), attribute.Int64("annals.last_version", res.LastVersion),
			attribute.Int64("annals.first_position", res.FirstPosition), attribute.Int64("annals.last_position", res.LastPosition))
	}
	return res, err
}

func (s *Store) appendEvents(ctx context.Context, q querier, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	res := events.AppendResult{StreamID: streamID}
	if err := events.ValidateStreamID(streamID); err != nil {
		return res, err
	}
	if len(evs) == 0 {
		return res, fmt.Errorf("%w: append to %s: no events", events.ErrInvalid, streamID)
	}
	if s.opts.DisableOptimisticConcurrency {
		expected = events.Any()
	}
	limit := int64(1) << 62
	if s.opts.MaxEventsPerStream > 0 {
		limit = int64(s.opts.MaxEventsPerStream)
		if int64(len(evs)) > limit {
			return res, &events.StreamFullError{StreamID: streamID, Version: -1, Appending: len(evs), Max: s.opts.MaxEventsPerStream}
		}
	}
	n := len(evs)
	ids := make([]uuid.UUID, n)
	// As [16]byte, which pgx encodes directly; uuid.UUID would go through driver.Valuer and
	// a string per event.
	rawIDs := make([][16]byte, n)
	types := make([]string, n)
	svs := make([]int32, n)
	data := make([]string, n)
	metas := make([]string, n)
	traced := hops.TraceMetadata(ctx, s.prop) // nil unless tracing
	for i, e := range evs {
		if e.Type == "" || len(e.Type) > 200 {
			return res, fmt.Errorf("%w: event %d of %s: type must be 1 to 200 characters", events.ErrInvalid, i, streamID)
		}
		if limit := s.opts.MaxEventBytes; limit > 0 && e.Size() > limit {
			return res, &events.TooLargeError{StreamID: streamID, Index: i, Type: e.Type, Size: e.Size(), Max: limit}
		}
		if !json.Valid(e.Data) {
			return res, fmt.Errorf("%w: event %d (%s) of %s: data is not valid JSON", events.ErrInvalid, i, e.Type, streamID)
		}
		ids[i] = e.ID
		if ids[i] == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return res, err
			}
			ids[i] = id
		}
		rawIDs[i] = ids[i]
		types[i] = e.Type
		svs[i] = int32(max(e.SchemaVersion, 1))
		data[i] = string(e.Data)
		metas[i] = "{}"
		md := e.Metadata
		if traced != nil && md[hops.MetadataTraceparent] == "" {
			md = make(map[string]string, len(e.Metadata)+len(traced))
			maps.Copy(md, e.Metadata)
			maps.Copy(md, traced)
		}
		if len(md) > 0 {
			b, err := json.Marshal(md)
			if err != nil {
				return res, err
			}
			metas[i] = string(b)
		}
	}

	mode := modeExact
	switch {
	case expected.IsAny():
		mode = modeAny
	case expected.IsNoStream():
		mode = modeNoStream
	case expected.IsStreamExists():
		mode = modeStreamExists
	}
	exp, _ := expected.Version()
	sql := s.appendSQL[mode][0]
	args := []any{streamID, events.Category(streamID), n, exp, limit, rawIDs, types, svs, data, opts.CorrelationID, opts.CausationID, metas}
	if n == 1 {
		sql = s.appendSQL[mode][1]
		args = []any{streamID, events.Category(streamID), n, exp, limit, rawIDs[0], types[0], svs[0], data[0], opts.CorrelationID, opts.CausationID, metas[0]}
	}
	// Only an append that read the stream's version itself may try again after losing a race.
	retry := expected.IsAny() || expected.IsStreamExists()
	for attempt := 0; ; attempt++ {
		res, err := s.tryAppend(ctx, q, sql, args)
		if err == nil {
			res.StreamID, res.EventIDs = streamID, ids
			return res, nil
		}
		var pg *pgconn.PgError
		lostRace := errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == "annals_events_stream_id_version_key"
		switch {
		case lostRace && retry && attempt < maxRetries:
			s.opts.Metrics.retried()
			if attempt > 0 {
				pause := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 5), 20*time.Millisecond)))) + 1
				select {
				case <-ctx.Done():
					return res, ctx.Err()
				case <-time.After(pause):
				}
			}
			continue
		case lostRace, errors.Is(err, pgx.ErrNoRows):
			// Refused: say why, from the stream's committed version.
			return res, s.refusal(ctx, q, streamID, expected, n, limit)
		default:
			return res, mapError(streamID, err)
		}
	}
}

// tryAppend runs the append statement once. In a transaction it runs inside a savepoint, so
// that a refused append leaves the caller's transaction usable: for a retry, for reading why
// it was refused, and for the caller. The savepoint, the statement and its release go to the
// server in one round trip; a refused statement makes the server skip the release, and a
// second round trip rolls back to the savepoint.
func (s *Store) tryAppend(ctx context.Context, q querier, sql string, args []any) (events.AppendResult, error) {
	var res events.AppendResult
	scan := func(row pgx.Row) error {
		var got int64
		var at time.Time
		err := row.Scan(&res.FirstPosition, &res.LastPosition, &res.FirstVersion, &res.LastVersion, &at, &got)
		res.RecordedAt = at.UTC()
		return err
	}
	tx, ok := q.(pgx.Tx)
	if !ok {
		return res, scan(q.QueryRow(ctx, sql, args...))
	}
	b := &pgx.Batch{}
	b.Queue("savepoint " + appendSavepoint)
	b.Queue(sql, args...)
	b.Queue("release savepoint " + appendSavepoint)
	br := tx.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		if err = scan(br.QueryRow()); err == nil {
			_, err = br.Exec()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil && tx.Conn().PgConn().TxStatus() == 'E' {
		if _, rerr := tx.Exec(ctx, "rollback to savepoint "+appendSavepoint); rerr != nil {
			// Both: the append's error still says what it was (a conflict, a cancelled
			// context), and the caller learns its transaction is unusable.
			return res, errors.Join(err, rerr)
		}
	}
	return res, err
}

// appendSavepoint is the savepoint of an append in the caller's transaction.
const appendSavepoint = "annals_append"

// refusal explains a refused append: the stream is not where it was expected, or it is full.
func (s *Store) refusal(ctx context.Context, q querier, streamID string, expected events.ExpectedVersion, n int, limit int64) error {
	actual := int64(-1)
	var v *int64
	if err := q.QueryRow(ctx, `select max(version) from annals_events where stream_id = $1`, streamID).Scan(&v); err != nil {
		return fmt.Errorf("append %s: read version after conflict: %w", streamID, err)
	}
	if v != nil {
		actual = *v
	}
	if expected.Allows(actual) && actual+int64(n) >= limit {
		return &events.StreamFullError{StreamID: streamID, Version: actual, Appending: n, Max: s.opts.MaxEventsPerStream}
	}
	return &events.VersionConflictError{StreamID: streamID, Expected: expected, Actual: actual}
}

// mapError turns PostgreSQL errors into the store's typed errors.
func mapError(streamID string, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "23505" && pg.ConstraintName == "annals_events_event_id_key":
			return fmt.Errorf("%w: append %s: an event with this id is already recorded", events.ErrInvalid, streamID)
		case pg.Code[:2] == "22": // data exceptions: bad JSON, out-of-range values
			return fmt.Errorf("%w: append %s: %s", events.ErrInvalid, streamID, pg.Message)
		}
	}
	return fmt.Errorf("append %s: %w", streamID, err)
}

// EnvelopeColumns are the columns of annals_events that ScanEnvelope reads, in its order,
// each prefixed with alias and a dot when alias is not empty. Queries that read events with
// more columns (the outbox's) put them after their own.
func EnvelopeColumns(alias string) string {
	p := ""
	if alias != "" {
		p = alias + "."
	}
	return p + "event_id, " + p + "stream_id, " + p + "category, " + p + "version, " + p + "global_position, " +
		p + "type, " + p + "schema_version, " + p + "data, " + p + "metadata, coalesce(" + p + "correlation_id, ''), " +
		"coalesce(" + p + "causation_id, ''), " + p + "recorded_at"
}

var envelopeColumns = EnvelopeColumns("")

// ScanEnvelope scans a row whose last columns are EnvelopeColumns, after the columns that
// before receives.
func ScanEnvelope(row pgx.Row, before ...any) (events.Envelope, error) {
	var e events.Envelope
	var data, meta []byte
	dest := append(before, &e.EventID, &e.StreamID, &e.Category, &e.Version, &e.GlobalPosition, &e.Type,
		&e.SchemaVersion, &data, &meta, &e.CorrelationID, &e.CausationID, &e.RecordedAt)
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.Data = data
	if err := json.Unmarshal(meta, &e.Metadata); err != nil {
		return e, fmt.Errorf("event %s metadata: %w", e.EventID, err)
	}
	e.RecordedAt = e.RecordedAt.UTC()
	return e, nil
}

func scanEnvelopes(rows pgx.Rows) ([]events.Envelope, error) {
	defer rows.Close()
	var out []events.Envelope
	for rows.Next() {
		e, err := ScanEnvelope(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReadStream reads one page of a stream in version order, with one query.
func (s *Store) ReadStream(ctx context.Context, streamID string, from, to int64, limit int) ([]events.Envelope, error) {
	if to < 0 {
		to = 1<<63 - 1
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: read %s: limit must be positive", events.ErrInvalid, streamID)
	}
	rows, err := s.pool.Query(ctx, `select `+envelopeColumns+` from annals_events
		where stream_id = $1 and version >= $2 and version <= $3 order by version limit $4`,
		streamID, max(from, 0), to, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	return scanEnvelopes(rows)
}

// StreamInfo reads a stream's metadata: its row, and its last event through the index.
func (s *Store) StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error) {
	info := events.StreamInfo{StreamID: streamID}
	err := s.pool.QueryRow(ctx, `select s.category, s.created_at, e.version, e.recorded_at
		from annals_streams s
		cross join lateral (select version, recorded_at from annals_events
			where stream_id = s.stream_id order by version desc limit 1) e
		where s.stream_id = $1`, streamID).Scan(&info.Category, &info.CreatedAt, &info.Version, &info.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("stream %s: %w", streamID, events.ErrNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	info.EventCount = info.Version + 1
	info.CreatedAt, info.UpdatedAt = info.CreatedAt.UTC(), info.UpdatedAt.UTC()
	return info, nil
}

// Stats adds the counters, which settling an outbox row (Outbox) keeps in the same statement,
// to what the outbox still holds, and reads the most recent events by position. Neither counts
// the events table; every committed event is counted exactly once.
func (s *Store) Stats(ctx context.Context, recent int) (events.Stats, error) {
	st := events.Stats{EventsByType: map[string]int64{}}
	rows, err := s.pool.Query(ctx, `select name, sum(n)::bigint from (
			select name, value as n from annals_counters
			union all
			select 'type:' || t, count(*) from annals_outbox, unnest(types) as t group by t
			union all
			select 'streams', count(*) from annals_outbox where first_version = 0
		) c group by name`)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return st, err
		}
		if name == "streams" {
			st.TotalStreams = v
		} else if t, ok := cutPrefix(name, "type:"); ok {
			st.EventsByType[t] = v
			st.TotalEvents += v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	if recent > 0 {
		rows, err := s.pool.Query(ctx, `select `+envelopeColumns+` from annals_events order by global_position desc limit $1`, recent)
		if err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		if st.RecentEvents, err = scanEnvelopes(rows); err != nil {
			return st, err
		}
	}
	if st.RecentEvents == nil {
		st.RecentEvents = []events.Envelope{}
	}
	return st, nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

// VersionAt is the version of the stream's last event recorded at or before t.
func (s *Store) VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error) {
	var v *int64
	if err := s.pool.QueryRow(ctx, `select max(version) from annals_events where stream_id = $1 and recorded_at <= $2`,
		streamID, t).Scan(&v); err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	if v == nil {
		return -1, nil
	}
	return *v, nil
}

// SaveSnapshot stores a snapshot; one that exists already is kept as it is.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	_, err := s.pool.Exec(ctx, `insert into annals_snapshots (stream_id, state_schema_version, version, state)
		values ($1, $2, $3, $4) on conflict do nothing`, snap.StreamID, snap.StateSchemaVersion, snap.Version, string(snap.State))
	if err != nil {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}

// LatestSnapshot returns the newest snapshot of the state-schema version at or below
// maxVersion.
func (s *Store) LatestSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64) (events.Snapshot, bool, error) {
	snap := events.Snapshot{StreamID: streamID, StateSchemaVersion: stateSchemaVersion}
	var state []byte
	err := s.pool.QueryRow(ctx, `select version, state, created_at from annals_snapshots
		where stream_id = $1 and state_schema_version = $2 and version <= $3
		order by version desc limit 1`, streamID, stateSchemaVersion, maxVersion).Scan(&snap.Version, &state, &snap.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return snap, false, nil
	}
	if err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: %w", streamID, err)
	}
	snap.State = state
	return snap, true, nil
}

var _ events.SnapshotStreamReader = (*Store)(nil)

// readFromSnapshot is the newest usable snapshot as a first row shaped as an event (its
// version, its state as data, its creation as recorded_at), marked by the first column, then
// the page of events after it. Snapshots precede the events they are followed by, so ordering
// by version puts the snapshot first.
var readFromSnapshot = `with s as (
	select version, state, created_at from annals_snapshots
	where stream_id = $1 and state_schema_version = $2 and version <= $3
	order by version desc limit 1
)
select true, '00000000-0000-0000-0000-000000000000'::uuid, $1::text, '', version, 0::bigint, '', $2::int,
	state::json, '{}'::json, '', '', created_at
from s
union all
(select false, ` + envelopeColumns + ` from annals_events
	where stream_id = $1 and version > coalesce((select version from s), -1) and version <= $3
	order by version limit $4)
order by 5`

// ReadFromSnapshot reads the stream's newest snapshot of the state-schema version at or below
// maxVersion and the first page of events after it, in one statement (see
// events.SnapshotStreamReader).
func (s *Store) ReadFromSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64, limit int) (events.Snapshot, bool, []events.Envelope, error) {
	snap := events.Snapshot{StreamID: streamID, StateSchemaVersion: stateSchemaVersion}
	if limit <= 0 {
		return snap, false, nil, fmt.Errorf("%w: read %s: limit must be positive", events.ErrInvalid, streamID)
	}
	rows, err := s.pool.Query(ctx, readFromSnapshot, streamID, stateSchemaVersion, maxVersion, limit)
	if err != nil {
		return snap, false, nil, fmt.Errorf("read %s from its snapshot: %w", streamID, err)
	}
	defer rows.Close()
	found := false
	var out []events.Envelope
	for rows.Next() {
		var isSnap bool
		e, err := ScanEnvelope(rows, &isSnap)
		if err != nil {
			return snap, false, nil, fmt.Errorf("read %s from its snapshot: %w", streamID, err)
		}
		if isSnap {
			found, snap.Version, snap.State, snap.CreatedAt = true, e.Version, e.Data, e.RecordedAt
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return snap, false, nil, fmt.Errorf("read %s from its snapshot: %w", streamID, err)
	}
	return snap, found, out, nil
}

// DeleteSnapshots deletes every snapshot of the stream, of every state-schema version: after
// an erasure, no state taken before it may be loaded again. It returns how many it deleted.
func (s *Store) DeleteSnapshots(ctx context.Context, streamID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `delete from annals_snapshots where stream_id = $1`, streamID)
	if err != nil {
		return 0, fmt.Errorf("delete snapshots of %s: %w", streamID, err)
	}
	return tag.RowsAffected(), nil
}

// PruneSnapshots deletes snapshots created more than retention ago, except the newest of each
// stream (SNAPSHOT_RETENTION_PERIOD). It returns how many it deleted.
func (s *Store) PruneSnapshots(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `delete from annals_snapshots o
		where o.created_at < clock_timestamp() - $1::interval
		  and exists (select 1 from annals_snapshots n where n.stream_id = o.stream_id
		      and (n.version, n.state_schema_version) > (o.version, o.state_schema_version))`, retention)
	if err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", err)
	}
	return tag.RowsAffected(), nil
}

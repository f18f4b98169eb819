package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
)

// Outbox is the publishing side of the transactional outbox that appends fill: the lock that
// elects one publishing relay, the wake-ups from appends in other processes, and, through the
// Session it hands out, every read and settlement of the outbox rows. It implements
// relay.Outbox.
type Outbox struct {
	pool *pgxpool.Pool
}

// NewOutbox returns the Outbox of the event store on pool. The schema must be migrated
// (Migrate).
func NewOutbox(pool *pgxpool.Pool) *Outbox { return &Outbox{pool: pool} }

// Outbox returns the Outbox of the store's database.
func (s *Store) Outbox() *Outbox { return NewOutbox(s.pool) }

// Lead takes a session of its own and waits on it, trying every poll, for the advisory lock
// key; once it holds it, the session is the publishing one (outbox.Session) and its planner
// settings keep its plans on the indexes (indexPlansOnly). It returns ctx's error when ctx
// ends first. A session whose lock state is unknown after an error is closed, never reused.
func (o *Outbox) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	conn, err := o.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox session: %w", err)
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, `select pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			conn.Conn().Close(context.Background())
			conn.Release()
			return nil, fmt.Errorf("outbox lock: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			conn.Release() // the lock was never held
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
	s := &session{conn: conn}
	if _, err := conn.Exec(ctx, indexPlansOnly); err != nil {
		s.Close()
		return nil, fmt.Errorf("outbox session settings: %w", err)
	}
	return s, nil
}

// Listen calls wake on every NOTIFY that appends send on OutboxChannel (Options.Notify), on a
// session of its own, until ctx ends or the session fails; it returns why it stopped. The
// session is closed, never handed to anyone else, as it may still be listening.
func (o *Outbox) Listen(ctx context.Context, wake func()) error {
	conn, err := o.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("outbox listen: %w", err)
	}
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "listen "+OutboxChannel); err != nil {
		return fmt.Errorf("outbox listen: %w", err)
	}
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return fmt.Errorf("outbox listen: %w", err)
		}
		wake()
	}
}

// indexPlansOnly keeps the publishing session's plans on the indexes. Its statements are
// prepared once and, after five runs, PostgreSQL may keep a generic plan for as long as the
// session lasts, which is as long as its relay leads. Planned while the tables are nearly
// empty (a new deployment), that plan scans the events table and hashes it on every round,
// and goes on doing so when the table holds millions of rows: measured here, a read that
// takes 0.15 ms on the indexes took 1.5 ms with 10,000 events. Every statement of the session
// is a lookup by key or a walk of an index in order, so nothing is lost by ruling the other
// plans out. A plan that has no choice but a scan (the backlog's count) then looks costly
// enough to be compiled by JIT, a third of a second that buys nothing here, so JIT is off
// too. The session is closed when it stops leading, so the settings go with it.
const indexPlansOnly = `set enable_seqscan = off; set enable_hashjoin = off; set enable_mergejoin = off; set jit = off`

// session is the publishing relay's session: it holds the lock, and every statement on it
// runs with indexPlansOnly.
type session struct {
	conn *pgxpool.Conn
}

var _ outbox.Session = (*session)(nil)

// readSQL takes, oldest transaction first, the committed outbox rows not marked held that
// start within $1 events and whose events' data and metadata, with those of the transactions
// before theirs, fit in $2 bytes (the first transaction's whatever their size), each with its
// stream's oldest pending append (head), whether its stream is held, and its events, each
// with its size.
//
// The rows within the event budget come first, from the partial index of the rows not held;
// then their events, whose sizes are summed in the same order, a transaction at a time (the
// GROUPS frame: a transaction's events are peers), so that the cut falls between transactions
// and the rows need no sort before it. Sizes are those of the values as text.
var readSQL = `select w.o_stream_id, w.first_version, w.last_version, w.o_category, w.created_at, w.head, w.held, w.size,
			` + EnvelopeColumns("w") + `
		from (
			select o.stream_id as o_stream_id, o.first_version, o.last_version, o.category as o_category, o.created_at, o.held,
				h.head, e.*, s.size, dense_rank() over upto as tx, sum(s.size) over upto as bytes
			from (select * from (
					select stream_id, first_version, last_version, category, created_at, tx_id,
						exists (select 1 from annals_outbox_holds h where h.stream_id = annals_outbox.stream_id) as held,
						sum(last_version - first_version + 1) over (order by tx_id rows unbounded preceding) as upto
					from annals_outbox where not held order by tx_id limit $1
				) c where upto - (last_version - first_version + 1) < $1) o
			cross join lateral (select min(first_version) as head from annals_outbox where stream_id = o.stream_id) h
			cross join lateral (select * from annals_events
				where stream_id = o.stream_id and version between o.first_version and o.last_version) e
			cross join lateral (select octet_length(e.data::text) + octet_length(e.metadata::text) as size) s
			window upto as (order by o.tx_id groups between unbounded preceding and current row)
		) w
		where w.tx = 1 or w.bytes <= $2
		order by w.o_stream_id, w.version`

// Pending takes, in one query, the oldest committed outbox rows not marked held (by
// transaction) within the event and byte budgets, each stream's oldest pending append, whether
// the stream is held, and the rows' events.
//
// Every committed row this query can see is a candidate; rows are deleted one by one once
// settled, and no high-water mark is kept: a row whose transaction commits late, with a lower
// position than rows already published, is simply read by a later call. Nothing is skipped,
// and an open transaction holds nothing back. The rows of held streams are marked by Settle
// and passed over by the index the read walks, so a held stream costs later reads nothing.
func (s *session) Pending(ctx context.Context, maxEvents int, maxBytes int64) ([]outbox.Append, error) {
	// Every lookup stays on the indexes whatever the backlog (indexPlansOnly): each row's head
	// is the first entry of its stream in the outbox's key, its hold a lookup of the holds'
	// key, and its events a range of the (stream_id, version) index.
	rows, err := s.conn.Query(ctx, readSQL, maxEvents, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var batch []outbox.Append
	for rows.Next() {
		var a outbox.Append
		e, err := ScanEnvelope(rows, &a.StreamID, &a.FirstVersion, &a.LastVersion, &a.Category, &a.CreatedAt, &a.Head, &a.Held, &a.Bytes)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if n := len(batch); n > 0 && batch[n-1].StreamID == a.StreamID && batch[n-1].FirstVersion == a.FirstVersion {
			batch[n-1].Events = append(batch[n-1].Events, e)
			batch[n-1].Bytes += a.Bytes
			continue
		}
		a.Events = []events.Envelope{e}
		batch = append(batch, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return batch, nil
}

// settleSQL deletes the outbox rows ($1 streams, $2 first versions) that were published, and
// counts their events in annals_counters, so that Stats, which adds the counters to what the
// outbox still holds, counts every committed event exactly once.
const settleSQL = `with d as (
			delete from annals_outbox o using unnest($1::text[], $2::bigint[]) as r(s, f)
			where o.stream_id = r.s and o.first_version = r.f
			returning o.first_version, o.types
		)
		insert into annals_counters (name, value)
		select name, count(*) from (
			select 'type:' || t as name from d, unnest(d.types) as t
			union all
			select 'streams' from d where d.first_version = 0
		) c group by name
		on conflict (name) do update set value = annals_counters.value + excluded.value`

// holdSQL records the holds ($1 streams, $2 first versions, $3 reasons) of the appends that
// cannot be published, and marks held the outbox rows ($4 streams, $5 first versions) of those
// appends and of the appends behind them. A row is marked only while its stream's hold exists:
// a new hold, or an existing one locked for the statement, so that a release, which deletes
// the hold before it unmarks the stream's rows, never leaves a row marked without its hold.
const holdSQL = `with created as (
			insert into annals_outbox_holds (stream_id, category, first_version, last_version, reason)
			select o.stream_id, o.category, o.first_version, o.last_version, r.reason
			from unnest($1::text[], $2::bigint[], $3::text[]) as r(s, f, reason)
			join annals_outbox o on o.stream_id = r.s and o.first_version = r.f
			on conflict (stream_id) do nothing
			returning stream_id
		),
		existing as (
			select stream_id from annals_outbox_holds where stream_id = any($4::text[]) for share
		)
		update annals_outbox o set held = true
		from unnest($4::text[], $5::bigint[]) as r(s, f)
		where o.stream_id = r.s and o.first_version = r.f and not o.held
			and (o.stream_id in (select stream_id from created) or o.stream_id in (select stream_id from existing))`

// Settle deletes the published rows, counting their events for the statistics, and records
// the holds and marks the held rows, in one transaction.
func (s *session) Settle(ctx context.Context, settled []outbox.Settlement) error {
	if len(settled) == 0 {
		return nil
	}
	var pubStreams, holdStreams, keptStreams []string
	var pubFirsts, holdFirsts, keptFirsts []int64
	var reasons []string
	for _, st := range settled {
		switch {
		case st.Published():
			pubStreams, pubFirsts = append(pubStreams, st.StreamID), append(pubFirsts, st.FirstVersion)
		default:
			if st.Hold != "" {
				holdStreams, holdFirsts, reasons = append(holdStreams, st.StreamID), append(holdFirsts, st.FirstVersion), append(reasons, st.Hold)
			}
			keptStreams, keptFirsts = append(keptStreams, st.StreamID), append(keptFirsts, st.FirstVersion)
		}
	}
	if len(keptStreams) == 0 {
		if _, err := s.conn.Exec(ctx, settleSQL, pubStreams, pubFirsts); err != nil {
			return fmt.Errorf("settle %d outbox rows: %w", len(settled), err)
		}
		return nil
	}
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if len(pubStreams) > 0 {
			if _, err := tx.Exec(ctx, settleSQL, pubStreams, pubFirsts); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, holdSQL, holdStreams, holdFirsts, reasons, keptStreams, keptFirsts)
		return err
	})
	if err != nil {
		return fmt.Errorf("settle %d outbox rows (%d held): %w", len(settled), len(keptStreams), err)
	}
	return nil
}

// backlogSQL counts the outbox's rows, the age of the oldest not held, the held streams and
// rows, and the age of the database's oldest open transaction other than the session's own.
const backlogSQL = `select count(*),
			coalesce(extract(epoch from clock_timestamp() - min(created_at) filter (where not held)), 0),
			(select count(*) from annals_outbox_holds),
			count(*) filter (where held),
			(select coalesce(extract(epoch from clock_timestamp() - min(xact_start)), 0) from pg_stat_activity
			 where pid <> pg_backend_pid() and (backend_xid is not null or backend_xmin is not null))
		from annals_outbox`

// Backlog measures what the outbox still holds.
func (s *session) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var b outbox.Backlog
	var oldest, holder float64
	if err := s.conn.QueryRow(ctx, backlogSQL).Scan(&b.Appends, &oldest, &b.HeldStreams, &b.HeldAppends, &holder); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	b.OldestAppend, b.OldestTransaction = seconds(oldest), seconds(holder)
	return b, nil
}

// reconcileSQL unmarks the held rows (found through annals_outbox_held) whose stream has no
// hold any more.
const reconcileSQL = `update annals_outbox o set held = false
		where o.held and not exists (select 1 from annals_outbox_holds h where h.stream_id = o.stream_id)`

// Reconcile returns to the flow the rows kept behind a hold that was deleted by hand.
func (s *session) Reconcile(ctx context.Context) (int64, error) {
	tag, err := s.conn.Exec(ctx, reconcileSQL)
	if err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", err)
	}
	return tag.RowsAffected(), nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Lost reports whether the session's connection broke; the lock went with it.
func (s *session) Lost() bool { return s.conn.Conn().IsClosed() }

// Close ends the session: the surest way to drop the lock, even mid-error, and its settings
// with it.
func (s *session) Close() {
	s.conn.Conn().Close(context.Background())
	s.conn.Release()
}

// Empty reports whether no append waits in the outbox to be published.
func (o *Outbox) Empty(ctx context.Context) (bool, error) {
	var waiting bool
	if err := o.pool.QueryRow(ctx, `select exists (select 1 from annals_outbox)`).Scan(&waiting); err != nil {
		return false, fmt.Errorf("outbox: %w", err)
	}
	return !waiting, nil
}

// Waiting counts the appends that wait in the outbox to be published. It scans the outbox:
// call it now and then, never once per event.
func (o *Outbox) Waiting(ctx context.Context) (int64, error) {
	var n int64
	if err := o.pool.QueryRow(ctx, `select count(*) from annals_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return n, nil
}

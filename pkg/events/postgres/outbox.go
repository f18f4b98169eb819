package postgres

import (
	"context"
	"fmt"
	"time"

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

// readSQL takes, oldest transaction first, the committed outbox rows within $1 events, each
// with its stream's oldest pending append (head) and its events.
var readSQL = `select o.stream_id, o.first_version, o.last_version, o.category, o.created_at, h.head,
			` + EnvelopeColumns("e") + `
		from (select * from (
				select stream_id, first_version, last_version, category, created_at,
					sum(last_version - first_version + 1) over (order by tx_id rows unbounded preceding) as upto
				from annals_outbox order by tx_id limit $1
			) c where upto - (last_version - first_version + 1) < $1) o
		cross join lateral (select min(first_version) as head from annals_outbox where stream_id = o.stream_id) h
		cross join lateral (select * from annals_events
			where stream_id = o.stream_id and version between o.first_version and o.last_version) e
		order by o.stream_id, e.version`

// Pending takes, in one query, the oldest committed outbox rows (by transaction) up to the
// event budget, each stream's oldest pending append, and the rows' events.
//
// Every committed row this query can see is a candidate; rows are deleted one by one once
// settled, and no high-water mark is kept: a row whose transaction commits late, with a lower
// position than rows already published, is simply read by a later call. Nothing is skipped,
// and an open transaction holds nothing back.
func (s *session) Pending(ctx context.Context, maxEvents int) ([]outbox.Append, error) {
	// Both lookups stay on the indexes whatever the backlog (indexPlansOnly): each row's head
	// is the first entry of its stream in the outbox's key, and its events a range of the
	// (stream_id, version) index.
	rows, err := s.conn.Query(ctx, readSQL, maxEvents)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var batch []outbox.Append
	for rows.Next() {
		var a outbox.Append
		e, err := ScanEnvelope(rows, &a.StreamID, &a.FirstVersion, &a.LastVersion, &a.Category, &a.CreatedAt, &a.Head)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if n := len(batch); n > 0 && batch[n-1].StreamID == a.StreamID && batch[n-1].FirstVersion == a.FirstVersion {
			batch[n-1].Events = append(batch[n-1].Events, e)
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

// settleSQL deletes the outbox rows ($1 streams, $2 first versions) that were published or,
// with a reason in $3, moves them to annals_outbox_dead, and counts their events in
// annals_counters, so that Stats, which adds the counters to what the outbox still holds,
// counts every committed event exactly once.
const settleSQL = `with r as (
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
		on conflict (name) do update set value = annals_counters.value + excluded.value`

// Settle removes the published rows and moves the others aside, counting their events for
// the statistics, all in one statement.
func (s *session) Settle(ctx context.Context, settled []outbox.Settlement) error {
	if len(settled) == 0 {
		return nil
	}
	streams := make([]string, len(settled))
	firsts := make([]int64, len(settled))
	reasons := make([]string, len(settled))
	for i, st := range settled {
		streams[i], firsts[i], reasons[i] = st.StreamID, st.FirstVersion, st.Reason
	}
	if _, err := s.conn.Exec(ctx, settleSQL, streams, firsts, reasons); err != nil {
		return fmt.Errorf("settle %d outbox rows: %w", len(settled), err)
	}
	return nil
}

// backlogSQL counts the outbox's rows, the age of the oldest and that of the database's
// oldest open transaction other than the session's own.
const backlogSQL = `select count(*),
			coalesce(extract(epoch from clock_timestamp() - min(created_at)), 0),
			(select coalesce(extract(epoch from clock_timestamp() - min(xact_start)), 0) from pg_stat_activity
			 where pid <> pg_backend_pid() and (backend_xid is not null or backend_xmin is not null))
		from annals_outbox`

// Backlog measures what the outbox still holds.
func (s *session) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var b outbox.Backlog
	var oldest, holder float64
	if err := s.conn.QueryRow(ctx, backlogSQL).Scan(&b.Appends, &oldest, &holder); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	b.OldestAppend, b.OldestTransaction = seconds(oldest), seconds(holder)
	return b, nil
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

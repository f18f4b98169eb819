package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/pkg/events"
)

// The all-stream is read by global position, and a position is handed out when its event is
// inserted, not when its transaction commits: a transaction that took position 5 may commit
// after another took 6 and committed. A reader that read 6 and goes on after it would never
// see 5. ReadAll is therefore commit-safe: it reads only up to the head, a position at or
// below which every transaction that appends has ended. It never hands out a position that a
// later commit could slip under.
//
// # The fence
//
// Before its insert takes a position, every append takes a transaction-level advisory lock in
// shared mode, the fence, with two keys: the events table's oid (so that the stores of other
// schemas of the database never hold this one back) and the append's floor, the identity
// sequence's last value at that moment. Every position the transaction takes afterwards is
// above its floor. A transaction takes its fence once, on its first append, and holds it until
// it ends; a transaction-local setting (annals.fence) remembers that it holds it, and a
// savepoint that rolls back forgets both. PostgreSQL releases a transaction's locks only once
// its commit is visible.
//
// The head is the lower of the sequence's last value, read first, and the lowest floor among
// the fences held (or awaited) when the lock table is read next. A transaction that holds a
// position at or below the head has ended by then: had it still held its fence when the locks
// were read, its floor, which is below its positions, would be below the head; and had it
// taken its fence after that, it would have taken its positions after the last value was read,
// above it. The events are then read in a later statement, whose snapshot sees every
// transaction that ended before it began, and only up to the head.
//
// Costs: an append reads the sequence and takes one lock; a read adds a look at the lock
// table (pg_locks), in the same round trip as its page, when positions were handed out above
// the last head it read. An open transaction that appended holds the all-stream (not the
// stream reads, nor the relay, which publishes appends as they commit) below its floor until
// it ends: Fences lists such transactions, WatchFences measures them and EndFence ends one
// (fences.go; annals fences). Two limits, both far from any deployment: the floor is kept in 32 bits and read
// back next to the last value, so no transaction may stay open while 2^31 positions are handed
// out; and the identity sequence must hand out one value at a time (CACHE 1, the default), so
// that its last value bounds every position handed out. Events inserted by any other means than
// Append and AppendTx are not fenced.
const (
	// fenceClass is the fence's first key: the events table's oid.
	fenceClass = `'annals_events'::regclass::oid`
	// lastPosition is the last position the identity sequence handed out; 0 before the first.
	lastPosition = `coalesce(pg_sequence_last_value('annals_events_global_position_seq'::regclass), 0)`

	// fenceCTE takes the transaction's fence unless it holds it already. It is materialised
	// and the insert reads its one row, so the lock is taken before the insert takes its
	// positions.
	fenceCTE = `fence as materialized (
	select case when current_setting('annals.fence', true) = 'on' then true
		else (select true from (select pg_advisory_xact_lock_shared(` + fenceClass + `::int4,
				(mod(` + lastPosition + ` + 2147483648, 4294967296) - 2147483648)::int4)) l)
			and set_config('annals.fence', 'on', true) = 'on'
	end as held
)`

	// lowestFloor is the lowest floor of the fences held or awaited, each rebuilt from its 32
	// bits as the value nearest seq_last; null when there is none.
	lowestFloor = `(select min(seq_last - (mod(seq_last - objid::bigint + 6442450944, 4294967296) - 2147483648))
	from pg_locks
	where locktype = 'advisory' and objsubid = 2 and classid = ` + fenceClass + `
	  and database = (select oid from pg_database where datname = current_database()))`

	// headSQL reads the sequence's last value, then the lowest floor, and returns the lower.
	headSQL = `with l as materialized (select ` + lastPosition + ` as seq_last)
select least(seq_last, ` + lowestFloor + `) from l`

	// pinHeadSQL reads the head as headSQL does and keeps it for the statements after it in
	// the transaction, and says whether it is a head (verified) that other reads may trust.
	// When nothing was handed out above $1, a head read before, the last value is the head:
	// nothing above a head is held. When nothing was handed out above $2, the reader's
	// position, the last value bounds the page, which is empty, but it is no head: an append
	// at or below it may still be open, and a position a caller made up must never be
	// trusted by the reads after it. Either way it spares itself the lock table.
	pinHeadSQL = `with l as materialized (select ` + lastPosition + ` as seq_last)
select set_config('annals.head', (case when seq_last <= greatest($1::bigint, $2::bigint) then seq_last else least(seq_last, ` + lowestFloor + `) end)::text, true)::bigint,
	seq_last <= $1::bigint or seq_last > $2::bigint
from l`
)

// readAllSQL reads a page up to the head that pinHeadSQL kept. The page is read as if there
// were no head, then cut at it: the rows are in position order, so the cut leaves the events
// up to the head, at most limit of them. A bound in the scan itself would be the same, but
// with two bounds on the position the planner, unsure of their range, may read it all through
// a bitmap and sort it, where one walks the index for the first rows.
var readAllSQL = `select * from (
	select ` + envelopeColumns + ` from annals_events
		where global_position > $1
		  and ($2::timestamptz is null or recorded_at >= $2)
		  and ($3::timestamptz is null or recorded_at < $3)
		  and (cardinality($4::text[]) = 0 or type = any($4))
		order by global_position limit $5
	) page
	where global_position <= current_setting('annals.head')::bigint
	order by global_position`

// Head returns the position the all-stream is complete up to: every append that took a
// position at or below it has committed or rolled back. It is 0 before the first append.
func (s *Store) Head(ctx context.Context) (int64, error) {
	var h int64
	if err := s.pool.QueryRow(ctx, headSQL).Scan(&h); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	s.sawHead(h)
	return h, nil
}

// sawHead keeps the highest head read, so that a read that finds nothing handed out above it
// needs no look at the lock table (pinHeadSQL).
func (s *Store) sawHead(h int64) {
	for {
		old := s.head.Load()
		if h <= old || s.head.CompareAndSwap(old, h) {
			return
		}
	}
}

// ReadAll reads one page of every stream in global-position order, up to the head (Head), in
// one round trip: a read-committed, read-only transaction that reads the head, then the page
// in a snapshot taken after it.
func (s *Store) ReadAll(ctx context.Context, q events.AllQuery) ([]events.Envelope, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: read all: limit must be positive", events.ErrInvalid)
	}
	var since, until *time.Time
	if !q.Since.IsZero() {
		since = &q.Since
	}
	if !q.Until.IsZero() {
		until = &q.Until
	}
	types := q.Types
	if types == nil {
		types = []string{}
	}
	b := &pgx.Batch{}
	b.Queue(`begin isolation level read committed read only`)
	b.Queue(pinHeadSQL, s.head.Load(), q.After)
	b.Queue(readAllSQL, q.After, since, until, types, q.Limit)
	b.Queue(`commit`)
	br := s.pool.SendBatch(ctx, b)
	evs, err := s.readPage(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	return evs, nil
}

// readPage reads the results of ReadAll's batch.
func (s *Store) readPage(br pgx.BatchResults) ([]events.Envelope, error) {
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	var head int64
	var verified bool
	if err := br.QueryRow().Scan(&head, &verified); err != nil {
		return nil, err
	}
	if verified {
		s.sawHead(head)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	evs, err := scanEnvelopes(rows)
	if err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	return evs, nil
}

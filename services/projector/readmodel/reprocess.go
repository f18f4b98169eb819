package readmodel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// ReprocessStats tell what a reprocess did, or would do (PlanReprocess fills Since to Events).
type ReprocessStats struct {
	// Since and Until bound the range: events recorded at or after Since and before Until.
	Since, Until time.Time
	// Streams counts the user and order streams with events in the range; Events their events
	// in the range.
	Streams int
	Events  int64
	// Processed counts the events of the range applied again; Skipped those not applied
	// because an event of their stream before them, or they themselves, were refused (see
	// Errors). Processed + Skipped = Events.
	Processed, Skipped int64
	// Applied counts every event applied to rebuild the streams' rows: their whole histories,
	// from version 0 to their last event, those before Since and after Until included.
	Applied int64
	// Errors are the events refused, one per stream at most: the stream's row stays at the
	// version before it, as the live projector leaves it.
	Errors   []ReprocessError
	Duration time.Duration
}

// ReprocessError is an event that a reprocess could not apply.
type ReprocessError struct {
	StreamID string
	EventID  uuid.UUID // uuid.Nil when the event could not be found again
	Version  int64     // -1 when the event could not be found again
	Type     string
	Err      string
}

// reprocessChunk is how many streams a reprocess rebuilds per transaction: their rows are
// locked until it commits, which holds back the live projector's events of those streams.
const reprocessChunk = 100

// reprocessRangeSQL lists the user and order streams with events recorded in [$2, $3), with
// how many (annals_events_recorded_at is a BRIN index on the recording time).
const reprocessRangeSQL = `select stream_id, count(*) from annals_events
	where category = any($1) and recorded_at >= $2 and recorded_at < $3
	group by stream_id order by stream_id`

// PlanReprocess tells what Reprocess would do: which streams have events recorded in
// [since, until), and how many. It changes nothing.
func (p *Projection) PlanReprocess(ctx context.Context, since, until time.Time) (ReprocessStats, error) {
	st, _, err := p.reprocessRange(ctx, since, until)
	return st, err
}

// Reprocess applies again the events recorded in [since, until) to the live read models, for
// a read model that has drifted from the event store (a row changed by hand, a bug fixed in a
// statement). It writes progress lines to progress (nil: none).
//
// A row is the fold of its stream's events from version 0, so a range of events cannot be
// applied again on its own: each stream with an event in the range is rebuilt from its whole
// history in the event store, and its row ends as the full history makes it, the events after
// until included (they were applied before, and leaving them out would turn the row back in
// time). Streams without an event in the range are left as they are, whatever their rows hold.
//
// Streams go in chunks, each in one READ COMMITTED transaction on the live generation (holding
// the switch lock shared, as applies do): it locks the streams' rows, applies their events with
// Apply's statements to temporary tables, and writes the results over the rows in place. Live
// applies of those streams wait for it, then find the rebuilt row: an event it holds is a
// duplicate, a later one applies on top. The projector may therefore keep running, and its
// inbox is left alone: every event it recorded is still applied.
//
// An event that the live projector would refuse (Permanent) stops its stream there, as in
// Rebuild: the row stays at the version before it, and the event is reported in Errors. An
// error of the database ends the reprocess; the chunks committed before it stay.
func (p *Projection) Reprocess(ctx context.Context, since, until time.Time, progress io.Writer) (ReprocessStats, error) {
	start := time.Now()
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	st, streams, err := p.reprocessRange(ctx, since, until)
	st.Errors = []ReprocessError{}
	if err != nil {
		return st, err
	}
	say("reprocess: %d streams with %d events in [%s, %s)", st.Streams, st.Events,
		since.UTC().Format(time.RFC3339Nano), until.UTC().Format(time.RFC3339Nano))
	done := 0
	size := reprocessChunk
	if p.reprocessChunk > 0 {
		size = p.reprocessChunk
	}
	for chunk := range slices.Chunk(streams, size) {
		var c chunkResult
		for attempt := 1; ; attempt++ {
			c, err = p.reprocessStreams(ctx, chunk, since, until)
			var pgErr *pgconn.PgError
			// A deadlock with the live projector's batches, which lock rows in their own order.
			if err == nil || attempt == 3 || !errors.As(err, &pgErr) || pgErr.Code != "40P01" {
				break
			}
		}
		if err != nil {
			st.Duration = time.Since(start)
			return st, fmt.Errorf("reprocess: %w", err)
		}
		done += len(chunk)
		st.Processed += c.processed
		st.Skipped += c.skipped
		st.Applied += c.applied
		st.Errors = append(st.Errors, c.errors...)
		say("reprocess: %d of %d streams rebuilt, %d events applied (%.0f events/s)", done, st.Streams, st.Applied,
			float64(st.Applied)/max(time.Since(start).Seconds(), 1e-3))
	}
	for _, e := range st.Errors {
		say("refused: %s@%d %s %s: %s", e.StreamID, e.Version, e.Type, e.EventID, e.Err)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// reprocessStream is a stream with events in a reprocess's range, and how many.
type reprocessStream struct {
	id     string
	events int64
}

func (p *Projection) reprocessRange(ctx context.Context, since, until time.Time) (ReprocessStats, []reprocessStream, error) {
	st := ReprocessStats{Since: since, Until: until}
	switch {
	case since.IsZero() || until.IsZero():
		return st, nil, errors.New("reprocess: since and until are both needed")
	case !until.After(since):
		return st, nil, fmt.Errorf("reprocess: until %s must be after since %s",
			until.UTC().Format(time.RFC3339Nano), since.UTC().Format(time.RFC3339Nano))
	}
	rows, err := p.pool.Query(ctx, reprocessRangeSQL, categories, since, until)
	if err != nil {
		return st, nil, fmt.Errorf("reprocess: read the event store: %w", err)
	}
	streams, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (reprocessStream, error) {
		var s reprocessStream
		return s, r.Scan(&s.id, &s.events)
	})
	if err != nil {
		return st, nil, fmt.Errorf("reprocess: read the event store: %w", err)
	}
	st.Streams = len(streams)
	for _, s := range streams {
		st.Events += s.events
	}
	return st, streams, nil
}

// chunkResult is what reprocessStreams did, counted once its transaction committed.
type chunkResult struct {
	processed, skipped, applied int64
	errors                      []ReprocessError
}

// The temporary tables a chunk's streams are rebuilt in, dropped when its transaction ends.
const (
	scratchUsers  = "pg_temp.annals_reprocess_users"
	scratchOrders = "pg_temp.annals_reprocess_orders"
)

// reprocessRefusedSQL finds, for each stream that stopped ($1), the first event above its
// rebuilt row's version (the refused one), and counts its stream's events in the range
// [$2, $3) before it.
const reprocessRefusedSQL = `with r as (
		select 'user-' || id::text as stream_id, version from ` + scratchUsers + `
		union all
		select 'order-' || id::text, version from ` + scratchOrders + `
	)
	select s.stream_id, e.event_id, e.version, e.type,
		(select count(*) from annals_events x where x.stream_id = s.stream_id
			and x.recorded_at >= $2 and x.recorded_at < $3 and x.version < e.version)
	from unnest($1::text[]) s(stream_id)
	left join r on r.stream_id = s.stream_id
	join lateral (select event_id, version, type from annals_events
		where stream_id = s.stream_id and version > coalesce(r.version, -1) order by version limit 1) e on true`

// reprocessStreams rebuilds the rows of the streams in one transaction; see Reprocess.
func (p *Projection) reprocessStreams(ctx context.Context, streams []reprocessStream, since, until time.Time) (chunkResult, error) {
	var c chunkResult
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return c, err
	}
	defer tx.Rollback(ctx)
	live, err := lockedGeneration(ctx, tx)
	if err != nil {
		return c, err
	}
	scratch := newGeneration(0, scratchUsers, scratchOrders)

	ids := make([]string, len(streams))
	var byTable [2][][16]byte
	for i, s := range streams {
		ids[i] = s.id
		category := events.Category(s.id)
		if id, err := domain.StreamUUID(s.id, category); err == nil {
			t := usersTable
			if category == domain.OrderCategory {
				t = ordersTable
			}
			byTable[t] = append(byTable[t], id)
		} // a malformed stream id has no row; Apply refuses its events
	}
	tables := [2][2]string{{live.users, scratch.users}, {live.orders, scratch.orders}}

	// Lock the live rows first: an event applied live from now on waits for this transaction,
	// so none can be lost between the read of the history and the write of the rows.
	var locked [2][][16]byte
	for t, tt := range tables {
		if len(byTable[t]) == 0 {
			continue
		}
		rows, err := tx.Query(ctx, `select id from `+tt[0]+` where id = any($1) order by id for update`, byTable[t])
		if err != nil {
			return c, fmt.Errorf("lock the rows of %s: %w", tt[0], err)
		}
		if locked[t], err = pgx.CollectRows(rows, pgx.RowTo[[16]byte]); err != nil {
			return c, fmt.Errorf("lock the rows of %s: %w", tt[0], err)
		}
	}
	for _, tt := range tables {
		if _, err := tx.Exec(ctx, `create temp table `+tt[1][len("pg_temp."):]+` (like `+tt[0]+` including all) on commit drop`); err != nil {
			return c, fmt.Errorf("create %s: %w", tt[1], err)
		}
	}

	stopped := map[string]string{}
	lastStream, lastVersion := "", int64(-1)
	for {
		rows, err := tx.Query(ctx, `select `+postgres.EnvelopeColumns("")+` from annals_events
			where stream_id = any($1) and (stream_id, version) > ($2, $3)
			order by stream_id, version limit $4`, ids, lastStream, lastVersion, p.batch)
		if err != nil {
			return c, fmt.Errorf("read the event store: %w", err)
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Envelope, error) { return postgres.ScanEnvelope(r) })
		if err != nil {
			return c, fmt.Errorf("read the event store: %w", err)
		}
		if len(page) == 0 {
			break
		}
		lastStream, lastVersion = page[len(page)-1].StreamID, page[len(page)-1].Version
		n, err := p.applyBatch(ctx, tx, scratch, page, stopped)
		c.applied += n
		if err != nil {
			return c, err
		}
	}

	for t, tt := range tables {
		if len(byTable[t]) == 0 {
			continue
		}
		if err := writeBack(ctx, tx, tt[0], tt[1], locked[t]); err != nil {
			return c, err
		}
	}
	if err := c.count(ctx, tx, streams, stopped, since, until); err != nil {
		return c, err
	}
	return c, tx.Commit(ctx)
}

// writeBack writes the rebuilt rows of scratch over those of live, in place, so that a live
// apply waiting for a locked row finds the new one. A row live gained since the lock (a stream
// created meanwhile, applied live from its start) is kept when it is further on. A locked row
// that the rebuild did not make (its stream's first event is refused) is deleted.
func writeBack(ctx context.Context, tx pgx.Tx, live, scratch string, locked [][16]byte) error {
	var cols []string
	if err := tx.QueryRow(ctx, `select array_agg(quote_ident(attname::text) order by attnum) from pg_attribute
		where attrelid = $1::regclass and attnum > 0 and not attisdropped`, live).Scan(&cols); err != nil {
		return fmt.Errorf("read the columns of %s: %w", live, err)
	}
	list, excluded := "", ""
	for i, c := range cols {
		if i > 0 {
			list += ", "
			excluded += ", "
		}
		list += c
		excluded += "excluded." + c
	}
	if locked == nil {
		locked = [][16]byte{}
	}
	b := &pgx.Batch{}
	b.Queue(`insert into `+live+` as l (`+list+`) select `+list+` from `+scratch+`
		on conflict (id) do update set (`+list+`) = row(`+excluded+`)
		where l.id = any($1) or l.version <= excluded.version`, locked)
	b.Queue(`delete from `+live+` l where l.id = any($1) and not exists (select from `+scratch+` s where s.id = l.id)`, locked)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write the rows of %s: %w", live, err)
	}
	return nil
}

// count counts the chunk's events of the range as processed or skipped, and reports the
// events that stopped their streams.
func (c *chunkResult) count(ctx context.Context, tx pgx.Tx, streams []reprocessStream, stopped map[string]string, since, until time.Time) error {
	var ids []string
	for _, s := range streams {
		if _, ok := stopped[s.id]; ok {
			ids = append(ids, s.id)
		} else {
			c.processed += s.events
		}
	}
	if len(ids) == 0 {
		return nil
	}
	found := map[string]ReprocessError{}
	before := map[string]int64{}
	rows, err := tx.Query(ctx, reprocessRefusedSQL, ids, since, until)
	if err != nil {
		return fmt.Errorf("find the refused events: %w", err)
	}
	var e ReprocessError
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&e.StreamID, &e.EventID, &e.Version, &e.Type, &n}, func() error {
		found[e.StreamID], before[e.StreamID] = e, n
		return nil
	}); err != nil {
		return fmt.Errorf("find the refused events: %w", err)
	}
	for _, s := range streams {
		if _, ok := stopped[s.id]; !ok {
			continue
		}
		e, ok := found[s.id]
		if !ok {
			e = ReprocessError{StreamID: s.id, Version: -1}
		}
		e.Err = stopped[s.id]
		c.errors = append(c.errors, e)
		c.processed += before[s.id]
		c.skipped += s.events - before[s.id]
	}
	return nil
}

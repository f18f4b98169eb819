package readmodel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// categories are the categories of the streams the read models are built from.
var categories = []string{domain.UserCategory, domain.OrderCategory}

// RebuildStats tell what a rebuild did.
type RebuildStats struct {
	// From and To are the generations before and after the switch.
	From, To int
	// Filled counts the events applied from the snapshot; CaughtUp those applied after it,
	// outside and (SwitchCaughtUp, included in CaughtUp) inside the switch.
	Filled, CaughtUp, SwitchCaughtUp int64
	// Stopped maps each stream the rebuild could not apply to the end to why: its read model
	// stays at the version before the event that failed, as in the live projector, which
	// sends that event to the dead-letter topic and parks the stream behind it.
	Stopped  map[string]string
	Duration time.Duration
}

// Rebuild builds the read models again from the event store on pool; see Projection.Rebuild.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, progress io.Writer) (RebuildStats, error) {
	return New(pool, Options{}).Rebuild(ctx, progress)
}

// rebuildLockClass is the first key of the session advisory lock that a rebuild holds; the
// second is a hash of the schema, so that rebuilds in other schemas run freely.
const rebuildLockClass = 0x616e6e70 // "annp"

// Rebuild builds the read models again from the event store, the source of truth, next to the
// live ones, which keep being served and updated until it switches over. It writes progress
// lines to progress (nil: none).
//
// It creates the tables of the next generation like the live ones and fills them by applying
// every event of the user and order streams, read in pages in one REPEATABLE READ snapshot,
// with the statements Apply runs, many per round trip. Then it catches up with the events
// committed since: positions commit out of order, so it compares every stream's events with
// the version of its new row and applies those above, once without any lock and once more in
// the switch's transaction, which holds the switch lock (a transaction-level advisory lock
// that every applying transaction holds shared, see lockedGeneration) exclusively: in-flight
// applies finish first, and new ones wait. Finally it points the live generation at the new tables, commits,
// and drops the old ones. Events the live projector receives after the switch that the
// rebuild applied already are skipped by Apply's version rule.
//
// A stream with an event that cannot be applied (Permanent) stays at the version before it, as
// in the live projector, and is reported in RebuildStats.Stopped. One rebuild runs at a time
// per schema; a failed rebuild leaves the live generation as it was.
func (p *Projection) Rebuild(ctx context.Context, progress io.Writer) (RebuildStats, error) {
	start := time.Now()
	st := RebuildStats{Stopped: map[string]string{}}
	if n := p.pool.Config().MaxConns; n < 2 {
		return st, fmt.Errorf("rebuild: the pool has %d connections; a rebuild holds one for its lock and works on another", n)
	}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	lock, err := p.pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	defer lock.Release()
	var locked bool
	if err := lock.QueryRow(ctx, `select pg_try_advisory_lock($1, hashtext(current_schema()))`, rebuildLockClass).Scan(&locked); err != nil {
		return st, fmt.Errorf("rebuild: lock: %w", err)
	}
	if !locked {
		return st, errors.New("rebuild: another rebuild of these read models is running")
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has ended.
		if _, err := lock.Exec(context.WithoutCancel(ctx), `select pg_advisory_unlock($1, hashtext(current_schema()))`, rebuildLockClass); err != nil {
			lock.Conn().Close(context.WithoutCancel(ctx)) // closing the session releases it too
		}
	}()

	old, err := liveGeneration(ctx, p.pool)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	next := generationOf(old.n + 1)
	st.From, st.To = old.n, next.n
	say("rebuild: generation %d is live; building generation %d from the event store", old.n, next.n)

	if err := p.fill(ctx, old, next, &st, say); err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	n, err := p.catchUp(ctx, p.pool, next, st.Stopped)
	st.CaughtUp += n
	if err != nil {
		return st, fmt.Errorf("rebuild: catch up: %w", err)
	}
	say("catch-up: %d events committed since the snapshot applied", n)
	if err := p.switchTo(ctx, old, next, &st); err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	say("switch: %d more events applied under the lock; generation %d is live", st.SwitchCaughtUp, next.n)
	dropped, err := p.dropOld(ctx)
	if err != nil {
		// The new generation is live; the old tables only take room until the next rebuild.
		say("drop: %v (the next rebuild drops them)", err)
	} else {
		say("drop: dropped %d tables of old generations", dropped)
	}
	for _, s := range slices.Sorted(maps.Keys(st.Stopped)) {
		say("stopped: %s: %s", s, st.Stopped[s])
	}
	st.Duration = time.Since(start)
	say("rebuild: done in %s: %d events from the snapshot, %d caught up, %d streams stopped",
		st.Duration.Round(time.Millisecond), st.Filled, st.CaughtUp, len(st.Stopped))
	return st, nil
}

// fill creates the next generation's tables and applies every event of the snapshot to them,
// in one REPEATABLE READ transaction: on failure nothing of it remains.
func (p *Projection) fill(ctx context.Context, old, next *generation, st *RebuildStats, say func(string, ...any)) error {
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Left over by a rebuild that failed after its fill: its catch-up never switched to it.
	// The first statement also takes the snapshot.
	if _, err := tx.Exec(ctx, `drop table if exists `+next.users+`, `+next.orders); err != nil {
		return fmt.Errorf("drop leftover tables of generation %d: %w", next.n, err)
	}
	for _, t := range [][2]string{{next.users, old.users}, {next.orders, old.orders}} {
		// LIKE copies columns, defaults, constraints and indexes, but not storage parameters
		// such as the fillfactor.
		var params []string
		if err := tx.QueryRow(ctx, `select coalesce(reloptions, '{}') from pg_class where oid = $1::regclass`, t[1]).Scan(&params); err != nil {
			return fmt.Errorf("read the storage parameters of %s: %w", t[1], err)
		}
		with := ""
		if len(params) > 0 {
			with = " with (" + strings.Join(params, ", ") + ")"
		}
		if _, err := tx.Exec(ctx, `create table `+t[0]+` (like `+t[1]+` including all)`+with); err != nil {
			return fmt.Errorf("create %s: %w", t[0], err)
		}
	}
	say("fill: snapshot taken; tables of generation %d created", next.n)

	start := time.Now()
	lastStream, lastVersion := "", int64(-1)
	streams := 0
	for {
		rows, err := tx.Query(ctx, `select `+postgres.EnvelopeColumns("")+` from annals_events
			where category = any($1) and (stream_id, version) > ($2, $3)
			order by stream_id, version limit $4`, categories, lastStream, lastVersion, p.batch)
		if err != nil {
			return fmt.Errorf("read the event store: %w", err)
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Envelope, error) { return postgres.ScanEnvelope(r) })
		if err != nil {
			return fmt.Errorf("read the event store: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.StreamID != lastStream {
				streams++
			}
			lastStream, lastVersion = e.StreamID, e.Version
		}
		n, err := p.applyBatch(ctx, tx, next, page, st.Stopped)
		st.Filled += n
		if err != nil {
			return err
		}
		say("fill: %d events of %d streams applied (%.0f events/s)", st.Filled, streams,
			float64(st.Filled)/max(time.Since(start).Seconds(), 1e-3))
	}
	// Statistics for the plans of the catch-up and of the queries once the tables are live.
	if _, err := tx.Exec(ctx, `analyze `+next.users+`, `+next.orders); err != nil {
		return fmt.Errorf("analyze the new tables: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the fill: %w", err)
	}
	return nil
}

// catchUpSQL reads, for every user and order stream, the events above the version of its row
// in the generation's tables (every event, for a stream without a row), in stream and version
// order: the events that committed after the rows were written. The rows are matched to their
// streams by stream id, so a stream whose id is not <category>-<lower-case UUID> never has a
// row; Apply refuses its events.
const catchUpSQL = `with r as (
		select 'user-' || id::text as stream_id, version from %[2]s
		union all
		select 'order-' || id::text, version from %[3]s
	)
	select %[1]s
	from annals_streams s
	left join r on r.stream_id = s.stream_id
	cross join lateral (select * from annals_events
		where stream_id = s.stream_id and version > coalesce(r.version, -1)) e
	where s.category = any($1)
	order by e.stream_id, e.version`

// beginner is a pool, or a transaction (whose Begin starts a savepoint).
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// catchUp applies, in a transaction of q (a pool) or a savepoint of it (a transaction), the
// events that the generation's tables lack.
func (p *Projection) catchUp(ctx context.Context, q beginner, g *generation, stopped map[string]string) (int64, error) {
	tx, err := q.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, fmt.Sprintf(catchUpSQL, postgres.EnvelopeColumns("e"), g.users, g.orders), categories)
	if err != nil {
		return 0, fmt.Errorf("read the event store: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Envelope, error) { return postgres.ScanEnvelope(r) })
	if err != nil {
		return 0, fmt.Errorf("read the event store: %w", err)
	}
	var n int64
	for page := range slices.Chunk(evs, p.batch) {
		k, err := p.applyBatch(ctx, tx, g, page, stopped)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, tx.Commit(ctx)
}

// switchTo catches up once more while holding the switch lock exclusively, and points the
// pointer at the new generation, in one transaction.
func (p *Projection) switchTo(ctx context.Context, old, next *generation, st *RebuildStats) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Granted once every transaction that applies events to the old generation has ended;
	// those that start later wait for this one, and then read the new pointer.
	if _, err := tx.Exec(ctx, lockExclusiveSQL, switchLockClass); err != nil {
		return fmt.Errorf("lock the generation pointer: %w", err)
	}
	var live int
	if err := tx.QueryRow(ctx, readPointerSQL).Scan(&live); err != nil {
		return fmt.Errorf("read the generation pointer: %w", err)
	}
	if live != old.n {
		return fmt.Errorf("the live generation changed from %d to %d during the rebuild", old.n, live)
	}
	if p.switchHook != nil {
		var pid int
		if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		p.switchHook(pid)
	}
	n, err := p.catchUp(ctx, tx, next, st.Stopped) // a savepoint of tx
	st.CaughtUp += n
	st.SwitchCaughtUp = n
	if err != nil {
		return fmt.Errorf("catch up under the lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `update `+PointerTable+` set generation = $1, switched_at = clock_timestamp()`, next.n); err != nil {
		return fmt.Errorf("switch the generation pointer: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the switch: %w", err)
	}
	return nil
}

// dropOld drops the tables of every generation but the live one, in one transaction. It waits
// for queries still reading them; queries that start later read the new generation.
func (p *Projection) dropOld(ctx context.Context) (int, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	g, err := lockedGeneration(ctx, tx)
	if err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `select tablename from pg_tables where schemaname = current_schema()
		and tablename ~ '^annals_proj_(users|orders)_g[0-9]+$' order by tablename`)
	if err != nil {
		return 0, fmt.Errorf("list old tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("list old tables: %w", err)
	}
	var drop []string
	for _, name := range names {
		m := generationTable.FindStringSubmatch(name)
		if n, err := strconv.Atoi(m[1]); err == nil && n != g.n {
			drop = append(drop, pgx.Identifier{name}.Sanitize())
		}
	}
	for _, t := range drop {
		if _, err := tx.Exec(ctx, `drop table `+t); err != nil {
			return 0, fmt.Errorf("drop %s: %w", t, err)
		}
	}
	return len(drop), tx.Commit(ctx)
}

// applyBatch applies the events, in stream and version order, to generation g inside tx. A
// stream in stopped is skipped; a stream with an event that is refused (Permanent) is added to
// it, and its later events are skipped. It returns how many events changed a row.
//
// The events go in rounds: round k holds the k-th event of every stream of the page, so that
// each round's events of one kind are rows of one statement, and a stream's events still apply
// in order. All statements go in one round trip, in a savepoint. When one of them fails or
// changes fewer rows than it has (a refused event: rare, the store's events fit their
// streams), the savepoint is rolled back and the events are applied one by one instead, each
// in a savepoint of its own, which tells the refused one apart.
func (p *Projection) applyBatch(ctx context.Context, tx pgx.Tx, g *generation, evs []events.Envelope, stopped map[string]string) (int64, error) {
	steps, b, rows, err := p.queueRounds(ctx, g, evs, stopped)
	if err != nil {
		return 0, err
	}
	if len(steps) == 0 {
		return 0, nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, err
	}
	br := sp.SendBatch(ctx, b)
	whole := true
	for _, want := range rows {
		tag, err := br.Exec()
		if err != nil || tag.RowsAffected() != want {
			whole = false
			break
		}
	}
	if err := br.Close(); err != nil {
		whole = false
	}
	if !whole {
		if err := sp.Rollback(ctx); err != nil {
			return 0, err
		}
		return applyOneByOne(ctx, tx, g, steps, stopped)
	}
	if err := sp.Commit(ctx); err != nil {
		return 0, err
	}
	return int64(len(steps)), nil
}

// queueRounds plans the events (see applyBatch) and queues their statements in rounds: the
// k-th event of every stream in round k, one multi-row statement per kind of event in a round.
// rows is the number of rows each queued statement must change. A failure to reveal an event's
// personal values that is not the event's fault (a dependency's) is returned.
func (p *Projection) queueRounds(ctx context.Context, g *generation, evs []events.Envelope, stopped map[string]string) (steps []step, b *pgx.Batch, rows []int64, err error) {
	steps = make([]step, 0, len(evs))
	var rounds [][numKinds][]step
	nth := map[string]int{}
	for _, e := range evs {
		if _, ok := stopped[e.StreamID]; ok {
			continue
		}
		s, ok, err := p.plan(ctx, e)
		switch {
		case err != nil && !consume.IsPermanent(err):
			return nil, nil, nil, err
		case err != nil:
			stopped[e.StreamID] = err.Error()
			continue
		case !ok:
			continue
		}
		steps = append(steps, s)
		k := nth[e.StreamID]
		nth[e.StreamID] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, [numKinds][]step{})
		}
		rounds[k][s.kind] = append(rounds[k][s.kind], s)
	}
	b = &pgx.Batch{}
	for _, r := range rounds {
		for k, ss := range r {
			if len(ss) > 0 {
				b.Queue(g.apply[k], columns(ss)...)
				rows = append(rows, int64(len(ss)))
			}
		}
	}
	return steps, b, rows, nil
}

func applyOneByOne(ctx context.Context, tx pgx.Tx, g *generation, steps []step, stopped map[string]string) (int64, error) {
	var n int64
	for _, s := range steps {
		if _, ok := stopped[s.e.StreamID]; ok {
			continue
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return n, err
		}
		applied, err := s.run(ctx, sp, g)
		if err != nil {
			_ = sp.Rollback(ctx)
			if !consume.IsPermanent(err) {
				return n, err
			}
			stopped[s.e.StreamID] = err.Error()
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return n, err
		}
		if applied {
			n++
		}
	}
	return n, nil
}

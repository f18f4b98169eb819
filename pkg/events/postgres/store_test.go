package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// newStore migrates a fresh schema on the real PostgreSQL and returns a store on it.
func newStore(tb testing.TB, opts postgres.Options) (*postgres.Store, *pgxpool.Pool) {
	tb.Helper()
	pool, _ := testenv.SchemaPool(tb)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return postgres.New(pool, opts), pool
}

func ev(tb testing.TB, typ string, data any) events.Event {
	tb.Helper()
	e, err := events.NewEvent(typ, data)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func evs(tb testing.TB, n int, typ string) []events.Event {
	tb.Helper()
	out := make([]events.Event, n)
	for i := range out {
		out[i] = ev(tb, typ, map[string]int{"n": i})
	}
	return out
}

// counts returns the number of rows in the tables an append writes.
func counts(tb testing.TB, pool *pgxpool.Pool) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, table := range []string{"annals_streams", "annals_events", "annals_outbox", "annals_counters"} {
		var n int64
		if err := pool.QueryRow(context.Background(), "select count(*) from "+table).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		out[table] = n
	}
	var sum int64
	if err := pool.QueryRow(context.Background(), "select coalesce(sum(cardinality(types)), 0)::bigint from annals_outbox").Scan(&sum); err != nil {
		tb.Fatal(err)
	}
	out["outbox_events"] = sum
	return out
}

func TestAppend(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})

	t.Run("OK", func(t *testing.T) {
		res, err := s.Append(ctx, "user-1", events.NoStream(), evs(t, 3, "UserCreated"),
			events.AppendOptions{CorrelationID: "corr-1", CausationID: "cmd-1"})
		if err != nil {
			t.Fatal(err)
		}
		if res.FirstVersion != 0 || res.LastVersion != 2 || len(res.EventIDs) != 3 {
			t.Errorf("result = %+v, want versions 0..2 and 3 ids", res)
		}
		if res.LastPosition-res.FirstPosition != 2 {
			t.Errorf("positions %d..%d, want 3 consecutive", res.FirstPosition, res.LastPosition)
		}
		got, err := s.ReadStream(ctx, "user-1", 0, -1, 10)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range got {
			if e.Version != int64(i) || e.EventID != res.EventIDs[i] || e.CorrelationID != "corr-1" || e.CausationID != "cmd-1" ||
				e.Category != "user" || e.SchemaVersion != 1 || e.RecordedAt.Location() != time.UTC {
				t.Errorf("event %d = %+v", i, e)
			}
			if e.EventID.Version() != 7 {
				t.Errorf("event id %s is not a UUIDv7", e.EventID)
			}
		}
		var outbox, first, last int64
		if err := pool.QueryRow(ctx, "select count(*), min(first_version), max(last_version) from annals_outbox where stream_id = 'user-1'").
			Scan(&outbox, &first, &last); err != nil {
			t.Fatal(err)
		}
		if outbox != 1 || first != 0 || last != 2 {
			t.Errorf("outbox: %d rows for versions %d..%d, want 1 row for 0..2 (one per append, same transaction)", outbox, first, last)
		}
	})

	for _, tc := range []struct {
		name       string
		stream     string
		expected   events.ExpectedVersion
		wantActual int64 // -2: no conflict
	}{
		{"AnyOnExisting", "user-1", events.Any(), -2},
		{"ExactMatches", "user-1", events.Exact(3), -2},
		{"StreamExistsOnExisting", "user-1", events.StreamExists(), -2},
		{"ErrVersionConflict/NoStreamOnExisting", "user-1", events.NoStream(), 5},
		{"ErrVersionConflict/ExactStale", "user-1", events.Exact(2), 5},
		{"ErrVersionConflict/StreamExistsOnMissing", "user-missing", events.StreamExists(), -1},
		{"ErrVersionConflict/ExactOnMissing", "user-missing2", events.Exact(0), -1},
		{"AnyOnMissing", "user-2", events.Any(), -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, pool)
			_, err := s.Append(ctx, tc.stream, tc.expected, evs(t, 1, "UserProfileUpdated"), events.AppendOptions{})
			var conflict *events.VersionConflictError
			if tc.wantActual == -2 {
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				return
			}
			if !errors.As(err, &conflict) {
				t.Fatalf("append = %v, want a version conflict", err)
			}
			if conflict.Actual != tc.wantActual || conflict.Expected != tc.expected {
				t.Errorf("conflict = %+v, want actual %d", conflict, tc.wantActual)
			}
			if after := counts(t, pool); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a refused append changed rows: before %v, after %v", before, after)
			}
		})
	}

	t.Run("ErrInvalid", func(t *testing.T) {
		before := counts(t, pool)
		for name, call := range map[string]func() error{
			"BadStreamID": func() error {
				_, err := s.Append(ctx, "nocategory", events.Any(), evs(t, 1, "X"), events.AppendOptions{})
				return err
			},
			"NoEvents": func() error { _, err := s.Append(ctx, "user-9", events.Any(), nil, events.AppendOptions{}); return err },
			"EmptyType": func() error {
				_, err := s.Append(ctx, "user-9", events.Any(), evs(t, 1, ""), events.AppendOptions{})
				return err
			},
			"BadJSON": func() error {
				_, err := s.Append(ctx, "user-9", events.Any(), []events.Event{{Type: "X", Data: []byte("{")}}, events.AppendOptions{})
				return err
			},
		} {
			if err := call(); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if after := counts(t, pool); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("invalid appends changed rows: before %v, after %v", before, after)
		}
	})

	t.Run("FailurePartWayLeavesNothing", func(t *testing.T) {
		// The third event reuses the id of an event already stored: the database refuses
		// it after the stream row, two events, their outbox rows and counters were written
		// within the statement. Nothing of it may remain.
		stored, err := s.ReadStream(ctx, "user-1", 0, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		batch := evs(t, 3, "OrderCreated")
		batch[2].ID = stored[0].EventID
		before := counts(t, pool)
		for _, stream := range []string{"order-new", "user-1"} {
			_, err := s.Append(ctx, stream, events.Any(), batch, events.AppendOptions{})
			if !errors.Is(err, events.ErrInvalid) {
				t.Errorf("append to %s: %v, want ErrInvalid (duplicate event id)", stream, err)
			}
		}
		if after := counts(t, pool); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a failed append left rows: before %v, after %v", before, after)
		}
		if _, err := s.StreamInfo(ctx, "order-new"); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("stream of a failed first append exists: %v", err)
		}
	})
}

// TestAppend_ConcurrentExpectedVersion: 50 appenders expecting the same version; exactly one
// wins and every other gets a conflict naming the winner's version.
func TestAppend_ConcurrentExpectedVersion(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	if _, err := s.Append(ctx, "order-race", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	eventstest.RaceVersion(t, 50, 2, func(int) (events.AppendResult, error) {
		return s.Append(ctx, "order-race", events.Exact(0), evs(t, 2, "ItemAdded"), events.AppendOptions{})
	})
	info, err := s.StreamInfo(ctx, "order-race")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 2 || info.EventCount != 3 {
		t.Errorf("stream = %+v, want version 2 with 3 events", info)
	}
}

// TestAppend_NoGapsNoDuplicates appends concurrently to a few streams with Any (and, with
// optimistic concurrency off, with stale expectations) and checks every stream's versions are
// exactly 0..n-1 and every counter adds up.
func TestAppend_NoGapsNoDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     postgres.Options
		expected events.ExpectedVersion
	}{
		{"Any", postgres.Options{}, events.Any()},
		{"OptimisticConcurrencyOff", postgres.Options{DisableOptimisticConcurrency: true}, events.Exact(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, pool := newStore(t, tc.opts)
			streams := []string{"order-a", "order-b", "order-c"}
			const workers, perWorker = 8, 25
			var wg sync.WaitGroup
			errc := make(chan error, workers*perWorker)
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						stream := streams[(w+i)%len(streams)]
						if _, err := s.Append(ctx, stream, tc.expected, evs(t, 1+i%3, "ItemAdded"), events.AppendOptions{}); err != nil {
							errc <- err
						}
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Errorf("append: %v", err)
			}
			var total int64
			for _, stream := range streams {
				var n, distinct, maxV int64
				if err := pool.QueryRow(ctx, `select count(*), count(distinct version), max(version) from annals_events where stream_id = $1`,
					stream).Scan(&n, &distinct, &maxV); err != nil {
					t.Fatal(err)
				}
				if n != distinct || maxV != n-1 {
					t.Errorf("%s: %d events, %d distinct versions, max %d: want 0..%d without gaps or duplicates", stream, n, distinct, maxV, n-1)
				}
				info, err := s.StreamInfo(ctx, stream)
				if err != nil {
					t.Fatal(err)
				}
				if info.Version != maxV {
					t.Errorf("%s: stream version %d, events end at %d", stream, info.Version, maxV)
				}
				total += n
			}
			st, err := s.Stats(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if st.TotalEvents != total || st.EventsByType["ItemAdded"] != total || st.TotalStreams != 3 {
				t.Errorf("stats = %+v, want %d events in 3 streams", st, total)
			}
		})
	}
}

func TestAppend_MaxEventsPerStream(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{MaxEventsPerStream: 5})
	if _, err := s.Append(ctx, "user-full", events.NoStream(), evs(t, 3, "X"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	before := counts(t, pool)
	for _, expected := range []events.ExpectedVersion{events.Exact(2), events.Any(), events.StreamExists()} {
		_, err := s.Append(ctx, "user-full", expected, evs(t, 3, "X"), events.AppendOptions{})
		var full *events.StreamFullError
		if !errors.As(err, &full) || !errors.Is(err, events.ErrStreamFull) || full.Max != 5 || full.Version != 2 {
			t.Errorf("expected %s: %v, want a StreamFullError at version 2 of max 5", expected, err)
		}
	}
	if _, err := s.Append(ctx, "user-new", events.NoStream(), evs(t, 6, "X"), events.AppendOptions{}); !errors.Is(err, events.ErrStreamFull) {
		t.Errorf("a first append over the limit: %v, want ErrStreamFull", err)
	}
	if after := counts(t, pool); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused appends changed rows: before %v, after %v", before, after)
	}
	if _, err := s.Append(ctx, "user-full", events.Exact(2), evs(t, 2, "X"), events.AppendOptions{}); err != nil {
		t.Errorf("an append up to the limit: %v", err)
	}
}

func TestReads(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	for i := range 25 {
		typ := "ItemAdded"
		if i%5 == 0 {
			typ = "ItemRemoved"
		}
		if _, err := s.Append(ctx, "order-r", events.Any(), []events.Event{ev(t, typ, map[string]int{"i": i})}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mid := time.Now()
	if _, err := s.Append(ctx, "user-r", events.NoStream(), evs(t, 2, "UserCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("StreamPages", func(t *testing.T) {
		var got []int64
		from := int64(0)
		for pages := 0; ; pages++ {
			page, err := s.ReadStream(ctx, "order-r", from, 22, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.Version)
			}
			if len(page) < 10 {
				break
			}
			from = page[len(page)-1].Version + 1
		}
		if len(got) != 23 || got[0] != 0 || got[22] != 22 {
			t.Errorf("read versions %v, want 0..22", got)
		}
		empty, err := s.ReadStream(ctx, "order-none", 0, -1, 10)
		if err != nil || len(empty) != 0 {
			t.Errorf("missing stream: %v, %v", empty, err)
		}
	})
	t.Run("All", func(t *testing.T) {
		all, err := s.ReadAll(ctx, events.AllQuery{Limit: 100})
		if err != nil || len(all) != 27 {
			t.Fatalf("all = %d events, %v; want 27", len(all), err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].GlobalPosition <= all[i-1].GlobalPosition {
				t.Fatalf("positions not increasing at %d", i)
			}
		}
		page, err := s.ReadAll(ctx, events.AllQuery{After: all[9].GlobalPosition, Limit: 5})
		if err != nil || len(page) != 5 || page[0].GlobalPosition != all[10].GlobalPosition {
			t.Errorf("page after position 10: %v, %v", page, err)
		}
		removed, err := s.ReadAll(ctx, events.AllQuery{Limit: 100, Types: []string{"ItemRemoved", "UserCreated"}})
		if err != nil || len(removed) != 7 {
			t.Errorf("type filter: %d events, %v; want 7", len(removed), err)
		}
		since, err := s.ReadAll(ctx, events.AllQuery{Limit: 100, Since: mid})
		if err != nil || len(since) != 2 || since[0].StreamID != "user-r" {
			t.Errorf("since filter: %d events, %v; want the 2 user events", len(since), err)
		}
		until, err := s.ReadAll(ctx, events.AllQuery{Limit: 100, Until: mid})
		if err != nil || len(until) != 25 {
			t.Errorf("until filter: %d events, %v; want 25", len(until), err)
		}
	})
	t.Run("StreamInfo", func(t *testing.T) {
		info, err := s.StreamInfo(ctx, "order-r")
		if err != nil {
			t.Fatal(err)
		}
		if info.Version != 24 || info.EventCount != 25 || info.Category != "order" || !info.UpdatedAt.After(info.CreatedAt) {
			t.Errorf("info = %+v", info)
		}
		if _, err := s.StreamInfo(ctx, "order-none"); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("missing stream: %v, want ErrNotFound", err)
		}
	})
	t.Run("Stats", func(t *testing.T) {
		st, err := s.Stats(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"ItemAdded": 20, "ItemRemoved": 5, "UserCreated": 2}
		if st.TotalEvents != 27 || st.TotalStreams != 2 || fmt.Sprint(st.EventsByType) != fmt.Sprint(want) {
			t.Errorf("stats = %d events, %d streams, %v", st.TotalEvents, st.TotalStreams, st.EventsByType)
		}
		if len(st.RecentEvents) != 3 || st.RecentEvents[0].StreamID != "user-r" || st.RecentEvents[0].Version != 1 {
			t.Errorf("recent events = %+v, want the newest first", st.RecentEvents)
		}
	})
}

// counter is a small aggregate for the repository tests.
type counter struct {
	Count int   `json:"count"`
	Sum   int64 `json:"sum"`
}

func counterDef(schemaVersion int) events.Definition[counter] {
	return events.Definition[counter]{
		Category:           "counter",
		StateSchemaVersion: schemaVersion,
		Apply: func(s *counter, e events.Envelope) error {
			var d struct{ N int64 }
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return err
			}
			s.Count++
			s.Sum += d.N
			return nil
		},
	}
}

func TestRepository_Snapshots(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	const every, total = 100, 10_000
	repo := &events.Repository[counter]{Store: s, Def: counterDef(1), SnapshotEvery: every}

	id := uuid.NewString()
	agg := repo.New(id)
	var want counter
	for batch := 0; batch < total/250; batch++ {
		for i := range 250 {
			n := int64(batch*250 + i)
			if err := agg.Record("Added", map[string]int64{"n": n}); err != nil {
				t.Fatal(err)
			}
			want.Count++
			want.Sum += n
		}
		if _, err := repo.Save(ctx, agg, events.AppendOptions{}); err != nil {
			t.Fatalf("save batch %d: %v", batch, err)
		}
	}

	t.Run("LoadReadsAtMostSnapshotFrequency", func(t *testing.T) {
		got, info, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State() != want || got.Version() != total-1 {
			t.Errorf("state %+v at %d, want %+v at %d", got.State(), got.Version(), want, total-1)
		}
		if info.EventsRead > every || info.SnapshotVersion < 0 {
			t.Errorf("load read %d events after snapshot %d, want at most %d", info.EventsRead, info.SnapshotVersion, every)
		}
	})
	t.Run("SnapshotIsRealState", func(t *testing.T) {
		snap, ok, err := s.LatestSnapshot(ctx, "counter-"+id, 1, 4999)
		if err != nil || !ok {
			t.Fatalf("snapshot at or below 4999: %v %v", ok, err)
		}
		var st counter
		if err := json.Unmarshal(snap.State, &st); err != nil {
			t.Fatal(err)
		}
		// Saves of 250 events cross a multiple of 100 on every save: the snapshot is at the
		// save's last version and holds exactly the events up to it.
		n := snap.Version + 1
		if st.Count != int(n) || st.Sum != n*(n-1)/2 {
			t.Errorf("snapshot at %d holds %+v, want count %d sum %d", snap.Version, st, n, n*(n-1)/2)
		}
	})
	t.Run("OtherStateSchemaVersionReplaysFully", func(t *testing.T) {
		repo2 := &events.Repository[counter]{Store: s, Def: counterDef(2), SnapshotEvery: every}
		got, info, err := repo2.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State() != want || info.SnapshotVersion != -1 || info.EventsRead != total {
			t.Errorf("state %+v, snapshot %d, read %d; want a full replay of %d events", got.State(), info.SnapshotVersion, info.EventsRead, total)
		}
	})
	t.Run("UnreadableSnapshotIsIgnored", func(t *testing.T) {
		if _, err := pool.Exec(ctx, `update annals_snapshots set state = '"not a counter"'
			where stream_id = $1 and version = $2`, "counter-"+id, total-1); err != nil {
			t.Fatal(err)
		}
		got, info, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State() != want || info.SnapshotVersion == total-1 {
			t.Errorf("state %+v from snapshot %d, want %+v without the unreadable snapshot", got.State(), info.SnapshotVersion, want)
		}
	})
	t.Run("Prune", func(t *testing.T) {
		var before int
		if err := pool.QueryRow(ctx, `select count(*) from annals_snapshots`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `update annals_snapshots set created_at = now() - interval '40 days'`); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneSnapshots(ctx, 30*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var left int
		var newest int64
		if err := pool.QueryRow(ctx, `select count(*), max(version) from annals_snapshots`).Scan(&left, &newest); err != nil {
			t.Fatal(err)
		}
		if left != 1 || int(n) != before-1 || newest != total-1 {
			t.Errorf("pruned %d of %d, left %d (newest %d); want all but the newest", n, before, left, newest)
		}
		if n, err := s.PruneSnapshots(ctx, 30*24*time.Hour); err != nil || n != 0 {
			t.Errorf("second prune: %d, %v; want nothing (the newest is kept)", n, err)
		}
	})
}

func TestRepository_Temporal(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	repo := &events.Repository[counter]{Store: s, Def: counterDef(1), SnapshotEvery: 4}
	id := uuid.NewString()
	agg := repo.New(id)
	var times []time.Time
	for i := range 10 {
		if err := agg.Record("Added", map[string]int{"n": 10}); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Save(ctx, agg, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		var at time.Time
		if err := pool.QueryRow(ctx, `select recorded_at from annals_events where stream_id = $1 and version = $2`,
			agg.StreamID(), i).Scan(&at); err != nil {
			t.Fatal(err)
		}
		times = append(times, at)
	}
	for _, v := range []int64{0, 3, 4, 6, 9} {
		got, _, err := repo.LoadVersion(ctx, id, v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if want := (counter{Count: int(v + 1), Sum: 10 * (v + 1)}); got.State() != want || got.Version() != v {
			t.Errorf("at version %d: %+v (version %d), want %+v", v, got.State(), got.Version(), want)
		}
		byTime, _, err := repo.LoadAt(ctx, id, times[v])
		if err != nil {
			t.Fatalf("at %s: %v", times[v], err)
		}
		if byTime.Version() != v || byTime.State() != got.State() {
			t.Errorf("at the time of version %d: version %d, state %+v", v, byTime.Version(), byTime.State())
		}
	}
	if _, _, err := repo.LoadAt(ctx, id, times[0].Add(-time.Millisecond)); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("before the first event: %v, want ErrNotFound", err)
	}
	if _, _, err := repo.LoadVersion(ctx, id, 10); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a version beyond the stream: %v, want ErrNotFound", err)
	}
	if _, _, err := repo.Load(ctx, uuid.NewString()); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a missing aggregate: %v, want ErrNotFound", err)
	}
}

// TestMigrate_Concurrent starts several migrations at once, as several writers starting
// together would: all succeed and each migration is applied once.
func TestMigrate_Concurrent(t *testing.T) {
	pool, _ := testenv.SchemaPool(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	applied := make([]int, 6)
	for i := range errs {
		wg.Go(func() {
			res, err := postgres.Migrate(context.Background(), pool, nil)
			errs[i], applied[i] = err, len(res)
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
		total += applied[i]
	}
	applied2, latest, err := postgres.SchemaVersion(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if applied2 != latest || int64(total) != latest {
		t.Errorf("applied %d migrations in all, schema at %d of %d; want each applied once", total, applied2, latest)
	}
}

// TestAppendTx: inside a caller's transaction, a refused append is reported as what it is and
// leaves the transaction usable, with nothing of the append in it.
func TestAppendTx(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	if _, err := s.Append(ctx, "order-tx", events.NoStream(), evs(t, 2, "OrderCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	before := counts(t, pool)
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		_, err := s.AppendTx(ctx, tx, "order-tx", events.Exact(0), evs(t, 1, "ItemAdded"), events.AppendOptions{})
		var conflict *events.VersionConflictError
		if !errors.As(err, &conflict) || conflict.Actual != 1 {
			t.Errorf("stale append in a transaction: %v, want a conflict at actual 1", err)
		}
		if _, err := s.AppendTx(ctx, tx, "order-tx", events.NoStream(), evs(t, 1, "ItemAdded"), events.AppendOptions{}); !errors.As(err, &conflict) {
			t.Errorf("no_stream on an existing stream in a transaction: %v, want a conflict", err)
		}
		// The transaction goes on: an append at the right version commits with it.
		_, err = postgres.TxAppender{Store: s, Tx: tx}.Append(ctx, "order-tx", events.Exact(1), evs(t, 1, "ItemAdded"), events.AppendOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	after := counts(t, pool)
	if after["annals_events"] != before["annals_events"]+1 || after["annals_outbox"] != before["annals_outbox"]+1 {
		t.Errorf("rows before %v, after %v; want exactly the one good append", before, after)
	}
}

func TestRepository_SnapshotAfterCommit(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	repo := &events.Repository[counter]{Store: s, Def: counterDef(1), SnapshotEvery: 2}
	agg := repo.New(uuid.NewString())
	for range 3 {
		if err := agg.Record("Added", map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	var res events.AppendResult
	rollback := errors.New("roll back")
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if res, err = repo.SaveWith(ctx, postgres.TxAppender{Store: s, Tx: tx}, agg, events.AppendOptions{}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	var snaps int
	if err := pool.QueryRow(ctx, `select count(*) from annals_snapshots`).Scan(&snaps); err != nil {
		t.Fatal(err)
	}
	if snaps != 0 {
		t.Errorf("SaveWith took %d snapshots of a transaction that rolled back", snaps)
	}
	if res.LastVersion != 2 {
		t.Fatalf("result %+v", res)
	}
}

// TestOnAppend_AfterCommit: the wake-up a relay gets from OnAppend comes only once the events
// are visible to it. A wake-up sent from inside a transaction that has not committed yet finds
// nothing, and the relay then sleeps until its next poll with the events waiting.
func TestOnAppend_AfterCommit(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var seen []int // committed events visible to another connection at each wake-up
	var s *postgres.Store
	var pool *pgxpool.Pool
	s, pool = newStore(t, postgres.Options{OnAppend: func() {
		var n int
		if err := pool.QueryRow(ctx, `select count(*) from annals_events`).Scan(&n); err != nil {
			t.Error(err)
		}
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
	}})
	if _, err := s.Append(ctx, "order-wake", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		_, err := s.AppendTx(ctx, tx, "order-wake", events.Exact(0), evs(t, 2, "ItemAdded"), events.AppendOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("roll back")
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.AppendTx(ctx, tx, "order-wake", events.Exact(2), evs(t, 1, "ItemAdded"), events.AppendOptions{}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []int{1, 3}) {
		t.Errorf("events visible at each wake-up: %v; want [1 3]: one wake-up per committed append, none for the rollback", seen)
	}
}

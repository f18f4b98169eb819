package eventstest

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// counter is the aggregate of the repository tests: how many numbers were added, and their sum.
type counter struct {
	Count int   `json:"count"`
	Sum   int64 `json:"sum"`
}

func counterDef(stateSchemaVersion int) events.Definition[counter] {
	return events.Definition[counter]{
		Category:           "counter",
		StateSchemaVersion: stateSchemaVersion,
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

// counted is the counter after the numbers 0..n-1 were added.
func counted(n int64) counter { return counter{Count: int(n), Sum: n * (n - 1) / 2} }

// add records the next numbers on a counter and saves them.
func add(tb testing.TB, repo *events.Repository[counter], a *events.Aggregate[counter], n int) events.AppendResult {
	tb.Helper()
	for range n {
		if err := a.Record("Added", map[string]int64{"n": int64(a.State().Count)}); err != nil {
			tb.Fatal(err)
		}
	}
	res, err := repo.Save(tb.Context(), a, events.AppendOptions{})
	if err != nil {
		tb.Fatalf("save %s: %v", a.StreamID(), err)
	}
	return res
}

func load(tb testing.TB, repo *events.Repository[counter], id string) (*events.Aggregate[counter], events.LoadInfo) {
	tb.Helper()
	a, info, err := repo.Load(tb.Context(), id)
	if err != nil {
		tb.Fatalf("load %s: %v", id, err)
	}
	return a, info
}

// testRepository: events.Repository on the store loads, changes and saves aggregates, with
// and without snapshots, at a version and at a time.
func testRepository(t *testing.T, s events.Store) {
	ctx := t.Context()

	t.Run("WithoutSnapshots", func(t *testing.T) {
		repo := &events.Repository[counter]{Store: s, Def: counterDef(1)}
		id := uuid.NewString()
		a := repo.New(id)
		if res := add(t, repo, a, 3); res.FirstVersion != 0 || res.LastVersion != 2 || a.LoadedVersion() != 2 || len(a.Pending()) != 0 {
			t.Errorf("save of a new aggregate: %+v, loaded version %d, %d pending", res, a.LoadedVersion(), len(a.Pending()))
		}
		got, info := load(t, repo, id)
		if got.State() != counted(3) || got.Version() != 2 || info.SnapshotVersion != -1 || info.EventsRead != 3 {
			t.Errorf("load: %+v at %d, %+v; want %+v at 2 from 3 events", got.State(), got.Version(), info, counted(3))
		}
		add(t, repo, got, 2)
		if again, _ := load(t, repo, id); again.State() != counted(5) || again.Version() != 4 {
			t.Errorf("after a command: %+v at %d, want %+v at 4", again.State(), again.Version(), counted(5))
		}
		if _, err := repo.Save(ctx, got, events.AppendOptions{}); !errors.Is(err, events.ErrNothingToSave) {
			t.Errorf("save without pending events: %v, want ErrNothingToSave", err)
		}
		if _, _, err := repo.Load(ctx, uuid.NewString()); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("load of a missing aggregate: %v, want ErrNotFound", err)
		}
	})

	t.Run("ErrVersionConflict", func(t *testing.T) {
		repo := &events.Repository[counter]{Store: s, Def: counterDef(1)}
		id := uuid.NewString()
		add(t, repo, repo.New(id), 2)
		first, _ := load(t, repo, id)
		second, _ := load(t, repo, id)
		add(t, repo, first, 1)
		if err := second.Record("Added", map[string]int64{"n": 100}); err != nil {
			t.Fatal(err)
		}
		before := contents(t, s)
		_, err := repo.Save(ctx, second, events.AppendOptions{})
		var conflict *events.VersionConflictError
		if !errors.As(err, &conflict) || conflict.Expected != events.Exact(1) || conflict.Actual != 2 {
			t.Errorf("save of a stale aggregate: %v, want a conflict expecting 1 at actual 2", err)
		}
		unchanged(t, s, before, "a stale save")
		twin := repo.New(id)
		if err := twin.Record("Added", map[string]int64{"n": 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Save(ctx, twin, events.AppendOptions{}); !errors.As(err, &conflict) || !conflict.Expected.IsNoStream() {
			t.Errorf("save of a new aggregate whose stream exists: %v, want a conflict expecting no stream", err)
		}
	})

	t.Run("WithSnapshots", func(t *testing.T) {
		repo := &events.Repository[counter]{Store: s, Def: counterDef(1), SnapshotEvery: 5, PageSize: 3,
			SnapshotErrors: func(err error) { t.Errorf("snapshot: %v", err) }}
		id := uuid.NewString()
		a := repo.New(id)
		for range 4 {
			add(t, repo, a, 4) // versions 0..15: saves that cross 5, 10 and 15 take snapshots
		}
		snap, v := latest(t, s, a.StreamID(), 1, math.MaxInt64)
		var st counter
		if v != 15 || json.Unmarshal(snap.State, &st) != nil || st != counted(16) {
			t.Fatalf("latest snapshot at %d holds %s, want %+v at 15", v, snap.State, counted(16))
		}
		got, info := load(t, repo, id)
		if got.State() != counted(16) || got.Version() != 15 || info.SnapshotVersion != 15 || info.EventsRead != 0 {
			t.Errorf("load: %+v at %d, %+v; want %+v at 15 from the snapshot alone", got.State(), got.Version(), info, counted(16))
		}
		add(t, repo, got, 2)
		if got, info := load(t, repo, id); got.State() != counted(18) || info.SnapshotVersion != 15 || info.EventsRead != 2 {
			t.Errorf("load: %+v, %+v; want %+v from the snapshot at 15 and 2 events", got.State(), info, counted(18))
		}

		t.Run("OtherStateSchemaVersion", func(t *testing.T) {
			repo2 := &events.Repository[counter]{Store: s, Def: counterDef(2), SnapshotEvery: 5, PageSize: 3}
			got, info, err := repo2.Load(ctx, id)
			if err != nil || got.State() != counted(18) || info.SnapshotVersion != -1 || info.EventsRead != 18 {
				t.Errorf("load with another state layout: %v, %+v; want %+v from a full replay of 18 events", err, info, counted(18))
			}
		})
		t.Run("UnreadableSnapshot", func(t *testing.T) {
			saveSnapshot(t, s, a.StreamID(), 1, 17, `"not a counter"`)
			got, info := load(t, repo, id)
			if got.State() != counted(18) || info.SnapshotVersion != -1 || info.EventsRead != 18 {
				t.Errorf("load past an unreadable snapshot: %+v, %+v; want %+v from a full replay", got.State(), info, counted(18))
			}
		})
		t.Run("LoadVersion", func(t *testing.T) {
			for _, v := range []int64{0, 4, 7, 12, 15, 16} {
				got, _, err := repo.LoadVersion(ctx, id, v)
				if err != nil {
					t.Fatalf("version %d: %v", v, err)
				}
				if got.State() != counted(v+1) || got.Version() != v || got.LoadedVersion() != v {
					t.Errorf("at version %d: %+v at %d, want %+v", v, got.State(), got.Version(), counted(v+1))
				}
			}
			if _, _, err := repo.LoadVersion(ctx, id, 18); !errors.Is(err, events.ErrNotFound) {
				t.Errorf("a version beyond the stream: %v, want ErrNotFound", err)
			}
		})
		t.Run("LoadAt", func(t *testing.T) {
			evs := readStream(t, s, a.StreamID())
			for _, e := range evs {
				want := versionAt(evs, e.RecordedAt)
				got, _, err := repo.LoadAt(ctx, id, e.RecordedAt)
				if err != nil {
					t.Fatalf("at %v: %v", e.RecordedAt, err)
				}
				if got.Version() != want || got.State() != counted(want+1) {
					t.Errorf("at the time of version %d: %+v at %d, want %+v at %d", e.Version, got.State(), got.Version(), counted(want+1), want)
				}
			}
			if _, _, err := repo.LoadAt(ctx, id, evs[0].RecordedAt.Add(-time.Microsecond)); !errors.Is(err, events.ErrNotFound) {
				t.Errorf("before the first event: %v, want ErrNotFound", err)
			}
		})
	})
}

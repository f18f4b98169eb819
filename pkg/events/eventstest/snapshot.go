package eventstest

import (
	"math"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// latest returns the state of the newest snapshot at or below maxVersion, and its version;
// -1 when there is none.
func latest(tb testing.TB, s events.Store, streamID string, schema int, maxVersion int64) (events.Snapshot, int64) {
	tb.Helper()
	snap, ok, err := s.LatestSnapshot(tb.Context(), streamID, schema, maxVersion)
	if err != nil {
		tb.Fatalf("latest snapshot of %s (schema %d, at most %d): %v", streamID, schema, maxVersion, err)
	}
	if !ok {
		return snap, -1
	}
	return snap, snap.Version
}

func saveSnapshot(tb testing.TB, s events.Store, streamID string, schema int, version int64, state string) {
	tb.Helper()
	err := s.SaveSnapshot(tb.Context(), events.Snapshot{StreamID: streamID, StateSchemaVersion: schema, Version: version, State: []byte(state)})
	if err != nil {
		tb.Fatalf("save snapshot %s@%d (schema %d): %v", streamID, version, schema, err)
	}
}

// testSnapshots: the newest snapshot of a state-schema version at or below a version; a
// snapshot saved twice keeps its first state.
func testSnapshots(t *testing.T, s events.Store) {
	if _, v := latest(t, s, "counter-1", 1, math.MaxInt64); v != -1 {
		t.Errorf("a store without snapshots has one at version %d", v)
	}
	state5 := []byte(`{"n": 5,  "tags": ["a", "b"]}`)
	saveSnapshot(t, s, "counter-1", 1, 2, `{"n":2}`)
	saveSnapshot(t, s, "counter-1", 1, 5, string(state5))
	saveSnapshot(t, s, "counter-1", 2, 7, `{"n":7}`)
	saveSnapshot(t, s, "counter-2", 1, 9, `{"n":9}`)
	for _, tc := range []struct {
		stream     string
		schema     int
		maxVersion int64
		want       int64
	}{
		{"counter-1", 1, math.MaxInt64, 5},
		{"counter-1", 1, 5, 5},
		{"counter-1", 1, 4, 2},
		{"counter-1", 1, 2, 2},
		{"counter-1", 1, 1, -1},
		{"counter-1", 2, math.MaxInt64, 7},
		{"counter-1", 2, 6, -1},
		{"counter-1", 3, math.MaxInt64, -1},
		{"counter-2", 1, math.MaxInt64, 9},
		{"counter-3", 1, math.MaxInt64, -1},
	} {
		if snap, v := latest(t, s, tc.stream, tc.schema, tc.maxVersion); v != tc.want {
			t.Errorf("latest of %s (schema %d) at most %d: version %d, want %d", tc.stream, tc.schema, tc.maxVersion, v, tc.want)
		} else if v >= 0 && (snap.StreamID != tc.stream || snap.StateSchemaVersion != tc.schema || snap.CreatedAt.IsZero()) {
			t.Errorf("latest of %s (schema %d): %+v", tc.stream, tc.schema, snap)
		}
	}

	snap, _ := latest(t, s, "counter-1", 1, 5)
	if !sameJSON(snap.State, state5) {
		t.Errorf("state %s, want %s", snap.State, state5)
	}
	t.Run("SavedTwiceKeepsTheFirst", func(t *testing.T) {
		saveSnapshot(t, s, "counter-1", 1, 5, `{"n":-1}`)
		if again, _ := latest(t, s, "counter-1", 1, 5); !sameJSON(again.State, state5) || !again.CreatedAt.Equal(snap.CreatedAt) {
			t.Errorf("after saving version 5 again: %s created at %v, want %s created at %v", again.State, again.CreatedAt, state5, snap.CreatedAt)
		}
	})
	t.Run("CallersCopies", func(t *testing.T) {
		in := events.Snapshot{StreamID: "counter-2", StateSchemaVersion: 1, Version: 12, State: []byte(`{"n":12}`)}
		if err := s.SaveSnapshot(t.Context(), in); err != nil {
			t.Fatal(err)
		}
		in.State[6] = '9'
		got, _ := latest(t, s, "counter-2", 1, 12)
		got.State[len(got.State)-2] = '7'
		if again, _ := latest(t, s, "counter-2", 1, 12); !sameJSON(again.State, []byte(`{"n":12}`)) {
			t.Errorf("stored state changed with the caller's slices: %s", again.State)
		}
	})
}

// testPruneSnapshots: pruning deletes the snapshots older than the retention except the
// newest of each stream, by version and then state-schema version. Skipped for a store
// without PruneSnapshots.
func testPruneSnapshots(t *testing.T, s events.Store) {
	p, ok := s.(Pruner)
	if !ok {
		t.Skip("the store does not prune snapshots (it has no PruneSnapshots)")
	}
	ctx := t.Context()
	for _, v := range []int64{1, 3, 5} {
		saveSnapshot(t, s, "counter-1", 1, v, `{}`)
	}
	saveSnapshot(t, s, "counter-1", 2, 4, `{}`)
	saveSnapshot(t, s, "counter-2", 1, 2, `{}`)
	saveSnapshot(t, s, "counter-3", 2, 3, `{}`)
	saveSnapshot(t, s, "counter-3", 1, 3, `{}`)
	type want struct {
		stream     string
		schema     int
		maxVersion int64
		version    int64
	}
	check := func(t *testing.T, wants []want) {
		t.Helper()
		for _, w := range wants {
			if _, v := latest(t, s, w.stream, w.schema, w.maxVersion); v != w.version {
				t.Errorf("latest of %s (schema %d) at most %d: version %d, want %d", w.stream, w.schema, w.maxVersion, v, w.version)
			}
		}
	}

	t.Run("WithinRetention", func(t *testing.T) {
		if n, err := p.PruneSnapshots(ctx, time.Hour); err != nil || n != 0 {
			t.Errorf("prune with an hour's retention: %d, %v; want nothing deleted", n, err)
		}
		check(t, []want{{"counter-1", 1, 4, 3}, {"counter-1", 1, 2, 1}, {"counter-1", 2, 9, 4}, {"counter-3", 1, 9, 3}})
	})
	t.Run("PastRetention", func(t *testing.T) {
		n, err := p.PruneSnapshots(ctx, 0)
		if err != nil || n != 4 {
			t.Errorf("prune with no retention: %d, %v; want 4 deleted", n, err)
		}
		check(t, []want{
			{"counter-1", 1, math.MaxInt64, 5}, {"counter-1", 1, 4, -1}, {"counter-1", 2, math.MaxInt64, -1},
			{"counter-2", 1, math.MaxInt64, 2},
			{"counter-3", 2, math.MaxInt64, 3}, {"counter-3", 1, math.MaxInt64, -1},
		})
		if n, err := p.PruneSnapshots(ctx, 0); err != nil || n != 0 {
			t.Errorf("second prune: %d, %v; want nothing deleted (the newest are kept)", n, err)
		}
	})
}

// testDeleteSnapshots: every snapshot of one stream goes, of every state-schema version, and
// those of other streams stay; a stream without snapshots deletes none.
func testDeleteSnapshots(t *testing.T, s events.Store) {
	d, ok := s.(SnapshotDeleter)
	if !ok {
		t.Skip("the store does not delete a stream's snapshots (it has no DeleteSnapshots)")
	}
	for _, v := range []int64{1, 3} {
		saveSnapshot(t, s, "counter-1", 1, v, `{"n":1}`)
	}
	saveSnapshot(t, s, "counter-1", 2, 4, `{"n":4}`)
	saveSnapshot(t, s, "counter-2", 1, 2, `{"n":2}`)
	n, err := d.DeleteSnapshots(t.Context(), "counter-1")
	if err != nil || n != 3 {
		t.Fatalf("DeleteSnapshots(counter-1) = %d, %v; want 3 deleted", n, err)
	}
	for _, schema := range []int{1, 2} {
		if _, v := latest(t, s, "counter-1", schema, math.MaxInt64); v != -1 {
			t.Errorf("counter-1 (schema %d) still has a snapshot at version %d", schema, v)
		}
	}
	if _, v := latest(t, s, "counter-2", 1, math.MaxInt64); v != 2 {
		t.Errorf("counter-2's snapshot is at version %d after another stream's were deleted, want 2", v)
	}
	if n, err := d.DeleteSnapshots(t.Context(), "counter-3"); err != nil || n != 0 {
		t.Errorf("DeleteSnapshots of a stream without snapshots = %d, %v; want 0", n, err)
	}
	saveSnapshot(t, s, "counter-1", 1, 5, `{"n":5}`)
	if _, v := latest(t, s, "counter-1", 1, math.MaxInt64); v != 5 {
		t.Errorf("a snapshot saved after the deletion reads at version %d, want 5", v)
	}
}

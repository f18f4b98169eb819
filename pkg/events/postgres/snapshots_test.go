package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

func TestStore_DeleteSnapshots(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	for _, snap := range []events.Snapshot{
		{StreamID: "user-a", Version: 1, StateSchemaVersion: 1, State: json.RawMessage(`{}`)},
		{StreamID: "user-a", Version: 3, StateSchemaVersion: 2, State: json.RawMessage(`{}`)},
		{StreamID: "user-b", Version: 1, StateSchemaVersion: 2, State: json.RawMessage(`{}`)},
	} {
		if err := s.SaveSnapshot(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteSnapshots(ctx, "user-a")
	if err != nil || n != 2 {
		t.Fatalf("DeleteSnapshots = %d, %v; want 2 (every state-schema version)", n, err)
	}
	for _, v := range []int{1, 2} {
		if _, ok, err := s.LatestSnapshot(ctx, "user-a", v, 10); err != nil || ok {
			t.Errorf("user-a v%d: a snapshot is left (%v)", v, err)
		}
	}
	if _, ok, err := s.LatestSnapshot(ctx, "user-b", 2, 10); err != nil || !ok {
		t.Errorf("user-b's snapshot went too (%v)", err)
	}
}

func TestRepository_LoadInOneStatement(t *testing.T) {
	ctx := context.Background()
	_, schema := testenv.SchemaPool(t)
	pool, count := testenv.CountingPool(t, schema)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	repo := &events.Repository[counter]{Store: postgres.New(pool, postgres.Options{}), Def: counterDef(1), SnapshotEvery: 5}
	id := uuid.NewString()
	agg := repo.New(id)
	for _, n := range []int{7, 2} { // the first save crosses 5: a snapshot at version 6
		for range n {
			if err := agg.Record("Added", map[string]int64{"n": int64(agg.State().Count)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := repo.Save(ctx, agg, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("FromSnapshot", func(t *testing.T) {
		before := count.Statements()
		got, info, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State() != (counter{Count: 9, Sum: 36}) || got.Version() != 8 || info.SnapshotVersion != 6 || info.EventsRead != 2 {
			t.Errorf("load: %+v at %d, %+v; want 9 numbers at 8 from the snapshot at 6 and 2 events", got.State(), got.Version(), info)
		}
		if n := count.Statements() - before; n != 1 {
			t.Errorf("load ran %d statements, want 1", n)
		}
	})
	t.Run("NoStream", func(t *testing.T) {
		before := count.Statements()
		if _, _, err := repo.Load(ctx, uuid.NewString()); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("load of a stream without events: %v, want ErrNotFound", err)
		}
		if n := count.Statements() - before; n != 1 {
			t.Errorf("load of a stream without events ran %d statements, want 1", n)
		}
	})
}

func TestStore_ReadFromSnapshot(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	if _, err := s.Append(ctx, "user-a", events.NoStream(), evs(t, 6, "Added"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{1, 3} {
		if err := s.SaveSnapshot(ctx, events.Snapshot{StreamID: "user-a", Version: v, StateSchemaVersion: 1, State: json.RawMessage(`{"at": ` + strconv.FormatInt(v, 10) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name          string
		stream        string
		schemaVersion int
		max           int64
		limit         int
	}{
		{"Latest", "user-a", 1, math.MaxInt64, 500},
		{"Page", "user-a", 1, math.MaxInt64, 1},
		{"BelowLatest", "user-a", 1, 2, 500},
		{"BeforeEverySnapshot", "user-a", 1, 0, 500},
		{"OtherStateSchemaVersion", "user-a", 2, math.MaxInt64, 3},
		{"NoStream", "user-b", 1, math.MaxInt64, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantSnap, wantOK, err := s.LatestSnapshot(ctx, tc.stream, tc.schemaVersion, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			from := int64(0)
			if wantOK {
				from = wantSnap.Version + 1
			}
			wantEvs, err := s.ReadStream(ctx, tc.stream, from, tc.max, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			snap, ok, got, err := s.ReadFromSnapshot(ctx, tc.stream, tc.schemaVersion, tc.max, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if ok != wantOK || snap.Version != wantSnap.Version || string(snap.State) != string(wantSnap.State) ||
				!snap.CreatedAt.Equal(wantSnap.CreatedAt) || snap.StreamID != tc.stream || snap.StateSchemaVersion != tc.schemaVersion {
				t.Errorf("snapshot %+v (%v), want %+v (%v)", snap, ok, wantSnap, wantOK)
			}
			if !reflect.DeepEqual(got, wantEvs) {
				t.Errorf("events %+v, want %+v", got, wantEvs)
			}
		})
	}
}

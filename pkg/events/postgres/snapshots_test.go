package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

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

package relaytest

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/pkg/relay"
)

// testLateAppend: an append takes its place and stays invisible while later appends on other
// streams commit and are published; once it commits, it is published too, never skipped.
func testLateAppend(t *testing.T, e *env) {
	if e.LateAppend == nil {
		t.Skip("the store has no append that takes its place before readers see it (Subject.LateAppend is nil)")
	}
	ctx := context.Background()
	commit, err := e.LateAppend(ctx, "order-late", newEvents(1, "Something"))
	if err != nil {
		t.Fatalf("late append: %v", err)
	}
	e.append(t, "order-a", 3, "Something")
	e.append(t, "order-b", 2, "Something")
	e.start(t, nil, relay.Config{})
	recs := e.awaitRecords(t, 5)
	checkOrderAll(t, recs, map[string]int64{"order-a": 3, "order-b": 2})
	if err := commit(); err != nil {
		t.Fatalf("commit the late append: %v", err)
	}
	late, err := e.Store.ReadStream(ctx, "order-late", 0, -1, 10)
	if err != nil || len(late) != 1 {
		t.Fatalf("read the late append back: %d events, %v", len(late), err)
	}
	later, err := e.Store.ReadStream(ctx, "order-a", 0, -1, 10)
	if err != nil || len(later) == 0 {
		t.Fatalf("read order-a: %d events, %v", len(later), err)
	}
	if late[0].GlobalPosition >= later[0].GlobalPosition {
		t.Fatalf("the late append's position %d is not below the later ones' (%d): it did not take its place before them",
			late[0].GlobalPosition, later[0].GlobalPosition)
	}
	recs = e.awaitRecords(t, 6)
	if dups := checkOrderAll(t, recs, map[string]int64{"order-a": 3, "order-b": 2, "order-late": 1}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	e.awaitDrained(t)
}

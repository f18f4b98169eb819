package mongodb_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/mongodb"
)

var _ events.IdempotencyStore = (*mongodb.Store)(nil)

// TestStore_Append_Idempotency: appends of different streams carrying one key, released
// together: exactly one lands, the others fail with ErrIdempotencyKeyTaken and record nothing
// (no event, no event id); the lookup returns what the winner recorded.
func TestStore_Append_Idempotency(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	ctx := t.Context()
	const n = 12
	evs := make([][]events.Event, n)
	for i := range evs {
		evs[i] = noted(t, 2)
	}
	results, winner := eventstest.RaceKey(t, n, func(i int) (events.AppendResult, error) {
		key := &events.IdempotencyKey{Key: "order-42", RequestHash: fmt.Appendf(nil, "hash-%d", i), Status: 201}
		return s.Append(ctx, fmt.Sprintf("note-%d", i), events.NoStream(), evs[i], events.AppendOptions{Idempotency: key})
	})
	for i := range n {
		got, err := s.ReadStream(ctx, fmt.Sprintf("note-%d", i), 0, -1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 2, false: 0}[i == winner]; len(got) != want {
			t.Errorf("stream note-%d holds %d events, want %d", i, len(got), want)
		}
	}
	// The losers' event ids are free again: nothing of their appends was recorded.
	for i := range n {
		if i == winner {
			continue
		}
		if _, err := s.Append(ctx, fmt.Sprintf("note-%d", i), events.NoStream(), evs[i], events.AppendOptions{}); err != nil {
			t.Errorf("appender %d again without the key: %v", i, err)
		}
	}

	got, ok, err := s.LookupIdempotency(ctx, "order-42")
	if err != nil || !ok {
		t.Fatalf("lookup: %v, %v", ok, err)
	}
	w := results[winner]
	if got.Key != "order-42" || !bytes.Equal(got.RequestHash, fmt.Appendf(nil, "hash-%d", winner)) || got.Status != 201 {
		t.Errorf("lookup: %+v, want the key, hash-%d and 201", got, winner)
	}
	if got.Result.StreamID != w.StreamID || got.Result.FirstVersion != w.FirstVersion || got.Result.LastVersion != w.LastVersion ||
		got.Result.FirstPosition != w.FirstPosition || got.Result.LastPosition != w.LastPosition || !got.Result.RecordedAt.Equal(w.RecordedAt) {
		t.Errorf("lookup result %+v, want %+v", got.Result, w)
	}
	if len(got.Result.EventIDs) != 2 || got.Result.EventIDs[0] != w.EventIDs[0] || got.Result.EventIDs[1] != w.EventIDs[1] {
		t.Errorf("lookup event ids %v, want %v", got.Result.EventIDs, w.EventIDs)
	}
	if !got.RecordedAt.Equal(w.RecordedAt) {
		t.Errorf("recorded at %v, want %v", got.RecordedAt, w.RecordedAt)
	}
	if _, ok, err := s.LookupIdempotency(ctx, "order-43"); err != nil || ok {
		t.Errorf("lookup of an unused key: %v, %v", ok, err)
	}
}

// TestStore_PruneIdempotency: a prune deletes the records older than the ttl only; the key is
// free again, and the events stay.
func TestStore_PruneIdempotency(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	ctx := t.Context()
	key := func(k string) events.AppendOptions {
		return events.AppendOptions{Idempotency: &events.IdempotencyKey{Key: k, RequestHash: []byte("h"), Status: 201}}
	}
	if _, err := s.Append(ctx, "note-old", events.NoStream(), noted(t, 1), key("old")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // an age to prune by, not synchronisation
	cut := time.Now()
	if _, err := s.Append(ctx, "note-new", events.NoStream(), noted(t, 1), key("new")); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneIdempotency(ctx, time.Since(cut))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("pruned %d records, want 1", n)
	}
	if _, ok, _ := s.LookupIdempotency(ctx, "old"); ok {
		t.Error("the old record is still there")
	}
	if _, ok, _ := s.LookupIdempotency(ctx, "new"); !ok {
		t.Error("the new record is gone")
	}
	if _, err := s.Append(ctx, "note-old", events.Exact(0), noted(t, 1), key("old")); err != nil {
		t.Errorf("the pruned key is not free: %v", err)
	}
	if _, err := s.Append(ctx, "note-x", events.NoStream(), noted(t, 1), key("new")); !errors.Is(err, events.ErrIdempotencyKeyTaken) {
		t.Errorf("the kept key again: %v, want ErrIdempotencyKeyTaken", err)
	}
	if got, err := s.ReadStream(ctx, "note-old", 0, -1, 10); err != nil || len(got) != 2 {
		t.Errorf("note-old after the prune: %d events, %v", len(got), err)
	}
}

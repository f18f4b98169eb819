package redis_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/redis"
)

func event(tb testing.TB, typ string) events.Event {
	tb.Helper()
	e, err := events.NewEvent(typ, map[string]string{"k": "v"})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// TestStore_Idempotency: appends of different streams carrying one key, released together:
// exactly one records its events and the key, the others get ErrIdempotencyKeyTaken and
// record nothing; the lookup returns what the winner recorded.
func TestStore_Idempotency(t *testing.T) {
	var _ events.IdempotencyStore = (*redis.Store)(nil)
	s := newStore(t, redis.Options{})
	ctx := t.Context()

	t.Run("OneWinner", func(t *testing.T) {
		const n = 20
		key := &events.IdempotencyKey{Key: "k-1", RequestHash: []byte{1, 2, 3}, Status: 201}
		results, winner := eventstest.RaceKey(t, n, func(i int) (events.AppendResult, error) {
			return s.Append(ctx, fmt.Sprintf("order-%d", i), events.NoStream(),
				[]events.Event{event(t, "OrderCreated"), event(t, "ItemAdded")}, events.AppendOptions{Idempotency: key})
		})
		for i := range n {
			if i == winner {
				continue
			}
			got, err := s.ReadStream(ctx, fmt.Sprintf("order-%d", i), 0, -1, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Errorf("appender %d was refused but wrote %d events", i, len(got))
			}
		}
		st, err := s.Stats(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.TotalEvents != 2 || st.TotalStreams != 1 {
			t.Errorf("stats = %d events in %d streams, want 2 in 1", st.TotalEvents, st.TotalStreams)
		}

		rec, ok, err := s.LookupIdempotency(ctx, "k-1")
		if err != nil || !ok {
			t.Fatalf("lookup k-1 = %v, %v; want the record", ok, err)
		}
		want := results[winner]
		if rec.Key != "k-1" || !bytes.Equal(rec.RequestHash, key.RequestHash) || rec.Status != 201 {
			t.Errorf("record = %q %x %d, want k-1 010203 201", rec.Key, rec.RequestHash, rec.Status)
		}
		got := rec.Result
		if got.StreamID != want.StreamID || got.FirstVersion != want.FirstVersion || got.LastVersion != want.LastVersion ||
			got.FirstPosition != want.FirstPosition || got.LastPosition != want.LastPosition ||
			!got.RecordedAt.Equal(want.RecordedAt) || len(got.EventIDs) != 2 || got.EventIDs[1] != want.EventIDs[1] {
			t.Errorf("recorded result = %+v, want %+v", got, want)
		}
		if !rec.RecordedAt.Equal(want.RecordedAt) {
			t.Errorf("recorded at %v, want the append's %v", rec.RecordedAt, want.RecordedAt)
		}
	})

	t.Run("KeyCheckedFirst", func(t *testing.T) {
		// A retried command whose first attempt landed is told the key is taken, not that
		// its stream moved on.
		key := &events.IdempotencyKey{Key: "k-2", RequestHash: []byte{9}, Status: 200}
		if _, err := s.Append(ctx, "user-1", events.NoStream(), []events.Event{event(t, "UserCreated")}, events.AppendOptions{Idempotency: key}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Append(ctx, "user-1", events.NoStream(), []events.Event{event(t, "UserCreated")}, events.AppendOptions{Idempotency: key})
		if !errors.Is(err, events.ErrIdempotencyKeyTaken) {
			t.Fatalf("append again = %v, want ErrIdempotencyKeyTaken", err)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		_, ok, err := s.LookupIdempotency(ctx, "never")
		if err != nil || ok {
			t.Fatalf("lookup of an unknown key = %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("EmptyKey", func(t *testing.T) {
		_, err := s.Append(ctx, "user-2", events.NoStream(), []events.Event{event(t, "UserCreated")},
			events.AppendOptions{Idempotency: &events.IdempotencyKey{}})
		if !errors.Is(err, events.ErrInvalid) {
			t.Fatalf("append with an empty key = %v, want ErrInvalid", err)
		}
	})
}

// TestStore_PruneIdempotency: a prune deletes the keys recorded more than ttl ago, and only
// those.
func TestStore_PruneIdempotency(t *testing.T) {
	s := newStore(t, redis.Options{})
	ctx := t.Context()
	for i := range 3 {
		key := &events.IdempotencyKey{Key: fmt.Sprintf("old-%d", i), Status: 201}
		if _, err := s.Append(ctx, fmt.Sprintf("user-%d", i), events.Any(), []events.Event{event(t, "UserCreated")}, events.AppendOptions{Idempotency: key}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond) // ages the first keys: the ttl below is what is measured
	if _, err := s.Append(ctx, "user-9", events.Any(), []events.Event{event(t, "UserCreated")},
		events.AppendOptions{Idempotency: &events.IdempotencyKey{Key: "new", Status: 201}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneIdempotency(ctx, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("pruned %d keys, want 3", n)
	}
	for key, want := range map[string]bool{"old-0": false, "old-2": false, "new": true} {
		if _, ok, err := s.LookupIdempotency(ctx, key); err != nil || ok != want {
			t.Errorf("lookup %s after prune = %v, %v; want %v", key, ok, err, want)
		}
	}
	// A pruned key can be used again.
	if _, err := s.Append(ctx, "user-0", events.Any(), []events.Event{event(t, "UserRenamed")},
		events.AppendOptions{Idempotency: &events.IdempotencyKey{Key: "old-0", Status: 201}}); err != nil {
		t.Errorf("append with a pruned key: %v", err)
	}
}

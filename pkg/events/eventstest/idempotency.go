package eventstest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// TestIdempotency runs the contract of idempotency keys (events.AppendOptions.Idempotency)
// against the stores that newStore returns, each fresh and empty as for TestStore.
//
// A store that implements events.IdempotencyStore must hold that:
//   - an append with a key records the key, its request hash and status, and where the
//     append landed (stream id, last version, last position) with the events, and
//     LookupIdempotency returns it; a key nothing was recorded under reads as absent;
//   - a refused append (a version conflict) records no key, so the key can be used again;
//   - an append with a key recorded before fails with events.ErrIdempotencyKeyTaken and
//     writes nothing; of concurrent appends with the same key exactly one wins, and the others
//     write no event and take no global position: the next append lands right after the
//     winner's;
//   - PruneIdempotency keeps the records younger than its ttl and deletes the older ones,
//     returning how many.
//
// A store that does not must refuse every append with a key with
// events.ErrIdempotencyUnsupported, writing nothing.
func TestIdempotency(t *testing.T, newStore func(t *testing.T) events.Store) {
	t.Helper()
	if _, ok := newStore(t).(events.IdempotencyStore); !ok {
		t.Run("Unsupported", func(t *testing.T) { testIdempotencyUnsupported(t, newStore(t)) })
		return
	}
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s events.Store, is events.IdempotencyStore)
	}{
		{"Recorded", testIdempotencyRecorded},
		{"RefusedAppend", testIdempotencyRefused},
		{"KeyTaken", testIdempotencyTaken},
		{"Concurrent", testIdempotencyConcurrent},
		{"Prune", testIdempotencyPrune},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			c.run(t, s, s.(events.IdempotencyStore))
		})
	}
}

// RaceKey releases n appends together, appendOne(i) making the i-th, each carrying one and the
// same idempotency key, and returns their results and the index of the one that won the key.
// It fails the test unless exactly one append succeeded and every other failed with
// events.ErrIdempotencyKeyTaken. A store's own tests use it to check what their store
// records of the race.
func RaceKey(tb testing.TB, n int, appendOne func(i int) (events.AppendResult, error)) (results []events.AppendResult, winner int) {
	tb.Helper()
	var wg sync.WaitGroup
	results = make([]events.AppendResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = appendOne(i)
		})
	}
	close(start)
	wg.Wait()
	winner = -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			tb.Errorf("appends %d and %d with the same key both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, events.ErrIdempotencyKeyTaken):
			tb.Errorf("append %d lost the key with %v, want ErrIdempotencyKeyTaken", i, err)
		}
	}
	if winner < 0 {
		tb.Fatal("no append with the key succeeded")
	}
	return results, winner
}

// keyed returns append options that carry key.
func keyed(key string, status int) events.AppendOptions {
	return events.AppendOptions{Idempotency: &events.IdempotencyKey{Key: key, RequestHash: []byte("hash of " + key), Status: status}}
}

// lookup returns what is recorded under key, failing the test on an error.
func lookup(tb testing.TB, is events.IdempotencyStore, key string) (events.IdempotentAppend, bool) {
	tb.Helper()
	r, ok, err := is.LookupIdempotency(tb.Context(), key)
	if err != nil {
		tb.Fatalf("look up %q: %v", key, err)
	}
	return r, ok
}

func testIdempotencyUnsupported(t *testing.T, s events.Store) {
	mustAppend(t, s, "user-u", events.NoStream(), batch(t, 1, "UserCreated")...)
	before := contents(t, s)
	_, err := s.Append(t.Context(), "user-v", events.NoStream(), batch(t, 1, "UserCreated"), keyed("k", 201))
	if !errors.Is(err, events.ErrIdempotencyUnsupported) {
		t.Errorf("an append with a key on a store without idempotency keys: %v, want ErrIdempotencyUnsupported", err)
	}
	unchanged(t, s, before, "an append with a key it cannot record")
}

func testIdempotencyRecorded(t *testing.T, s events.Store, is events.IdempotencyStore) {
	if r, ok := lookup(t, is, "absent"); ok {
		t.Errorf("a key never used reads as %+v", r)
	}
	mustAppend(t, s, "user-a", events.NoStream(), batch(t, 1, "UserCreated")...)
	start := time.Now()
	res, err := s.Append(t.Context(), "order-r", events.NoStream(), batch(t, 3, "ItemAdded"), keyed("k1", 201))
	if err != nil {
		t.Fatalf("append with a key: %v", err)
	}
	if got := readStream(t, s, "order-r"); len(got) != 3 {
		t.Fatalf("the append with a key recorded %d events, want 3", len(got))
	}
	r, ok := lookup(t, is, "k1")
	if !ok {
		t.Fatal("the key of an append reads as absent")
	}
	if r.Key != "k1" || !bytes.Equal(r.RequestHash, []byte("hash of k1")) || r.Status != 201 {
		t.Errorf("recorded key %q, hash %q, status %d; want k1, %q, 201", r.Key, r.RequestHash, r.Status, "hash of k1")
	}
	if r.Result.StreamID != res.StreamID || r.Result.LastVersion != res.LastVersion || r.Result.LastPosition != res.LastPosition {
		t.Errorf("recorded result %+v, want stream %s, version %d, position %d", r.Result, res.StreamID, res.LastVersion, res.LastPosition)
	}
	if r.RecordedAt.IsZero() || r.RecordedAt.Before(start.Add(-time.Minute)) || r.RecordedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("recorded at %s, want about %s", r.RecordedAt, start)
	}
}

func testIdempotencyRefused(t *testing.T, s events.Store, is events.IdempotencyStore) {
	before := contents(t, s)
	_, err := s.Append(t.Context(), "order-x", events.Exact(4), batch(t, 1, "ItemAdded"), keyed("k2", 200))
	var vc *events.VersionConflictError
	if !errors.As(err, &vc) {
		t.Fatalf("an append with a key at a version the stream is not at: %v, want a version conflict", err)
	}
	unchanged(t, s, before, "a refused append with a key")
	if r, ok := lookup(t, is, "k2"); ok {
		t.Errorf("a refused append recorded its key: %+v", r)
	}
	if _, err := s.Append(t.Context(), "order-x", events.NoStream(), batch(t, 1, "ItemAdded"), keyed("k2", 200)); err != nil {
		t.Errorf("the key of a refused append, used again: %v", err)
	}
}

func testIdempotencyTaken(t *testing.T, s events.Store, is events.IdempotencyStore) {
	first, err := s.Append(t.Context(), "user-t1", events.NoStream(), batch(t, 1, "UserCreated"), keyed("k3", 201))
	if err != nil {
		t.Fatal(err)
	}
	before := contents(t, s)
	_, err = s.Append(t.Context(), "user-t2", events.NoStream(), batch(t, 1, "UserCreated"), keyed("k3", 200))
	if !errors.Is(err, events.ErrIdempotencyKeyTaken) {
		t.Errorf("an append with a key recorded before: %v, want ErrIdempotencyKeyTaken", err)
	}
	unchanged(t, s, before, "an append with a taken key")
	if r, _ := lookup(t, is, "k3"); r.Status != 201 || r.Result.StreamID != first.StreamID || r.Result.LastPosition != first.LastPosition {
		t.Errorf("after a second use the key reads %+v, want the first append's", r)
	}
}

func testIdempotencyConcurrent(t *testing.T, s events.Store, is events.IdempotencyStore) {
	results, winner := RaceKey(t, 8, func(i int) (events.AppendResult, error) {
		return s.Append(t.Context(), fmt.Sprintf("user-c%d", i), events.NoStream(), batch(t, 2, "UserCreated"), keyed("same", 201))
	})
	won := results[winner]
	all := readAll(t, s)
	if len(all) != 2 || all[0].StreamID != won.StreamID || all[1].StreamID != won.StreamID {
		t.Errorf("the store holds %d events, want the winner's 2 of %s: %v", len(all), won.StreamID, all)
	}
	if r, ok := lookup(t, is, "same"); !ok || r.Result.StreamID != won.StreamID || r.Result.LastPosition != won.LastPosition {
		t.Errorf("the key reads %+v, %v; want the winner's append", r, ok)
	}
	next := mustAppend(t, s, "user-next", events.NoStream(), batch(t, 1, "UserCreated")...)
	if next.FirstPosition != won.LastPosition+1 {
		t.Errorf("the append after the race landed at position %d, want %d: a loser took a position", next.FirstPosition, won.LastPosition+1)
	}
}

func testIdempotencyPrune(t *testing.T, s events.Store, is events.IdempotencyStore) {
	ctx := t.Context()
	if _, err := s.Append(ctx, "user-p", events.NoStream(), batch(t, 1, "UserCreated"), keyed("k4", 201)); err != nil {
		t.Fatal(err)
	}
	n, err := is.PruneIdempotency(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Errorf("prune with an hour's ttl: %d, %v; want 0 deleted", n, err)
	}
	if _, ok := lookup(t, is, "k4"); !ok {
		t.Fatal("a key younger than the ttl was pruned")
	}
	// The record ages past a millisecond's ttl at once; poll for the store's clock to agree.
	var deleted int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := is.PruneIdempotency(ctx, time.Millisecond)
		if err != nil {
			t.Fatalf("prune: %v", err)
		}
		deleted += n
		if _, ok := lookup(t, is, "k4"); !ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := lookup(t, is, "k4"); ok || deleted != 1 {
		t.Errorf("after pruning with a millisecond's ttl: %d deleted, key present %v; want 1 deleted and the key gone", deleted, ok)
	}
	if _, err := s.Append(ctx, "user-p2", events.NoStream(), batch(t, 1, "UserCreated"), keyed("k4", 201)); err != nil {
		t.Errorf("a pruned key, used again: %v", err)
	}
}

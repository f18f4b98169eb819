package redis_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/redis"
)

// client connects to REDIS_URL (scripts/stack.sh env; redis://127.0.0.1:56379/0 when unset).
// A server that does not answer fails the test, or skips it under -short.
func client(tb testing.TB) *goredis.Client {
	tb.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:56379/0"
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	rdb := goredis.NewClient(opts)
	tb.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(tb.Context()).Err(); err != nil {
		if testing.Short() {
			tb.Skipf("no Redis at %s (scripts/stack.sh up redis): %v", url, err)
		}
		tb.Fatalf("no Redis at %s (scripts/stack.sh up redis): %v", url, err)
	}
	return rdb
}

// newStore returns an empty store under a prefix of its own, whose keys are deleted when the
// test ends.
func newStore(tb testing.TB, opts redis.Options) *redis.Store {
	tb.Helper()
	s, _ := newNamedStore(tb, opts)
	return s
}

// newNamedStore is newStore that also returns the store's prefix.
func newNamedStore(tb testing.TB, opts redis.Options) (*redis.Store, string) {
	tb.Helper()
	rdb := client(tb)
	opts.Prefix = "test-" + uuid.NewString()
	tb.Cleanup(func() {
		// The test's context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, "{"+opts.Prefix+"}:*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return redis.New(rdb, opts), opts.Prefix
}

func TestStore_Contract(t *testing.T) {
	eventstest.TestStore(t, func(t *testing.T) events.Store { return newStore(t, redis.Options{}) })
}

func TestStore_ContractMaxEventsPerStream(t *testing.T) {
	eventstest.TestMaxEventsPerStream(t, func(t *testing.T, max int) events.Store {
		return newStore(t, redis.Options{MaxEventsPerStream: max})
	})
}

func TestStore_ContractMaxEventBytes(t *testing.T) {
	eventstest.TestMaxEventBytes(t, func(t *testing.T, max int) events.Store {
		return newStore(t, redis.Options{MaxEventBytes: max})
	})
}

// TestStore_AppendConcurrent: 50 appenders released together at one expected version, then
// many appenders on a few streams at once: exactly one of the first wins, and afterwards the
// global positions and every stream's versions have no gaps, and the counters agree.
func TestStore_AppendConcurrent(t *testing.T) {
	s := newStore(t, redis.Options{})
	ctx := t.Context()
	ev := func(typ string) events.Event {
		e, err := events.NewEvent(typ, map[string]string{"k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if _, err := s.Append(ctx, "order-1", events.NoStream(), []events.Event{ev("OrderCreated")}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("OneWinner", func(t *testing.T) {
		eventstest.RaceVersion(t, 50, 2, func(int) (events.AppendResult, error) {
			return s.Append(ctx, "order-1", events.Exact(0), []events.Event{ev("ItemAdded"), ev("ItemAdded")}, events.AppendOptions{})
		})
		got, err := s.ReadStream(ctx, "order-1", 0, -1, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Errorf("order-1 has %d events, want 3", len(got))
		}
	})

	t.Run("NoGaps", func(t *testing.T) {
		const writers, each = 20, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				stream := fmt.Sprintf("user-%d", w%4)
				for range each {
					if _, err := s.Append(ctx, stream, events.Any(), []events.Event{ev("UserRenamed"), ev("UserTouched")}, events.AppendOptions{}); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		all, err := s.ReadAll(ctx, events.AllQuery{Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		want := 3 + writers*each*2
		if len(all) != want {
			t.Fatalf("read %d events, want %d", len(all), want)
		}
		next := map[string]int64{}
		for i, e := range all {
			if e.GlobalPosition != int64(i+1) {
				t.Fatalf("event %d has global position %d, want %d: a gap", i, e.GlobalPosition, i+1)
			}
			if e.Version != next[e.StreamID] {
				t.Fatalf("%s: version %d after %d, want %d: a gap", e.StreamID, e.Version, next[e.StreamID]-1, next[e.StreamID])
			}
			next[e.StreamID]++
		}
		st, err := s.Stats(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.TotalEvents != int64(want) || st.TotalStreams != 5 || st.EventsByType["UserRenamed"] != writers*each {
			t.Errorf("stats = %d events, %d streams, by type %v; want %d, 5, %d UserRenamed",
				st.TotalEvents, st.TotalStreams, st.EventsByType, want, writers*each)
		}
	})
}

func TestStore_ContractIdempotency(t *testing.T) {
	eventstest.TestIdempotency(t, func(t *testing.T) events.Store { return newStore(t, redis.Options{}) })
}

package mongodb_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/mongodb"
)

var (
	clientOnce sync.Once
	client     *mongo.Client
	clientErr  error
)

// database returns a database of the server at MONGODB_URI of the test's own, dropped when
// the test ends. Without MONGODB_URI the test fails, or skips under -short.
func database(tb testing.TB) *mongo.Database {
	tb.Helper()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		msg := "MONGODB_URI is not set: this test needs MongoDB or FerretDB (run `scripts/stack.sh install ferretdb && scripts/stack.sh up ferretdb` and `eval \"$(scripts/stack.sh env)\"`, or `make test`)"
		if testing.Short() {
			tb.Skip(msg)
		}
		tb.Fatal(msg)
	}
	clientOnce.Do(func() {
		client, clientErr = mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
		if clientErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			clientErr = client.Ping(ctx, nil)
		}
	})
	if clientErr != nil {
		tb.Fatalf("connect to %s: %v", uri, clientErr)
	}
	db := client.Database("annals_test_" + uuid.NewString()[:8])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			tb.Errorf("drop database %s: %v", db.Name(), err)
		}
	})
	return db
}

// newStore returns a Store on a fresh database.
func newStore(tb testing.TB, opts mongodb.Options) (*mongodb.Store, *mongo.Database) {
	tb.Helper()
	db := database(tb)
	s, err := mongodb.New(tb.Context(), db, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s, db
}

var _ eventstest.Pruner = (*mongodb.Store)(nil)

// TestStore_Contract runs the contract of events.Store, each part on a fresh database.
func TestStore_Contract(t *testing.T) {
	eventstest.TestStore(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, mongodb.Options{})
		return s
	})
}

func TestStore_ContractMaxEventsPerStream(t *testing.T) {
	eventstest.TestMaxEventsPerStream(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, mongodb.Options{MaxEventsPerStream: max})
		return s
	})
}

func TestStore_ContractMaxEventBytes(t *testing.T) {
	eventstest.TestMaxEventBytes(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, mongodb.Options{MaxEventBytes: max})
		return s
	})
}

func noted(tb testing.TB, n int) []events.Event {
	tb.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		e, err := events.NewEvent("Noted", map[string]int{"i": i})
		if err != nil {
			tb.Fatal(err)
		}
		evs[i] = e
	}
	return evs
}

// TestStore_Append_Concurrent: 50 appenders released together at one expected version: exactly
// one wins, every other gets a conflict with the winner's version; then appenders with Any on a
// few streams leave every stream without a gap and ReadAll with every event once, in order.
func TestStore_Append_Concurrent(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	ctx := t.Context()
	if _, err := s.Append(ctx, "note-race", events.NoStream(), noted(t, 1), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("OneWinner", func(t *testing.T) {
		eventstest.RaceVersion(t, 50, 3, func(int) (events.AppendResult, error) {
			return s.Append(ctx, "note-race", events.Exact(0), noted(t, 3), events.AppendOptions{})
		})
	})

	t.Run("NoGaps", func(t *testing.T) {
		const appenders, appends = 50, 4
		streams := []string{"note-a", "note-b", "note-c"}
		var wg sync.WaitGroup
		errs := make(chan error, appenders*appends)
		for i := range appenders {
			wg.Go(func() {
				for j := range appends {
					stream := streams[(i+j)%len(streams)]
					if _, err := s.Append(ctx, stream, events.Any(), noted(t, 1+(i+j)%3), events.AppendOptions{}); err != nil {
						errs <- fmt.Errorf("appender %d, append %d: %w", i, j, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		total := 4 // note-race
		for _, stream := range streams {
			got, err := s.ReadStream(ctx, stream, 0, -1, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			for v, e := range got {
				if e.Version != int64(v) {
					t.Fatalf("%s: event %d has version %d: a gap", stream, v, e.Version)
				}
			}
			total += len(got)
		}
		all, err := s.ReadAll(ctx, events.AllQuery{Limit: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != total {
			t.Errorf("read all: %d events, want %d", len(all), total)
		}
		seen := map[uuid.UUID]bool{}
		for i, e := range all {
			if seen[e.EventID] || i > 0 && e.GlobalPosition <= all[i-1].GlobalPosition {
				t.Fatalf("read all: event %d (%s at %d) repeated or out of order", i, e.EventID, e.GlobalPosition)
			}
			seen[e.EventID] = true
		}
	})
}

// TestStore_ReadAll_Follow: a reader that follows ReadAll from its last position while appends
// run on several streams, as the relay will, sees every event exactly once and in the order of
// a ReadAll after them: no append lands below a position it has read.
func TestStore_ReadAll_Follow(t *testing.T) {
	s, db := newStore(t, mongodb.Options{})
	ctx := t.Context()
	// A second Store on the same database: appends of two processes collide on positions.
	other, err := mongodb.New(ctx, db, mongodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const appenders, appends = 16, 5
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Go(func() {
			st := s
			if i%2 == 1 {
				st = other
			}
			for j := range appends {
				stream := fmt.Sprintf("note-%d", (i+j)%4)
				if _, err := st.Append(ctx, stream, events.Any(), noted(t, 1+j%3), events.AppendOptions{}); err != nil {
					t.Errorf("appender %d: %v", i, err)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	var followed []uuid.UUID
	var after int64
	follow := func() {
		t.Helper()
		page, err := s.ReadAll(ctx, events.AllQuery{After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			followed = append(followed, e.EventID)
			after = e.GlobalPosition
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			follow()
		}
	}
	for n := -1; n != len(followed); {
		n = len(followed)
		follow()
	}

	all, err := s.ReadAll(ctx, events.AllQuery{Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(followed) {
		t.Fatalf("the follower read %d events, ReadAll afterwards %d: it skipped some", len(followed), len(all))
	}
	for i, e := range all {
		if e.EventID != followed[i] {
			t.Fatalf("event %d: the follower read %s, ReadAll afterwards %s at position %d", i, followed[i], e.EventID, e.GlobalPosition)
		}
	}
}

func TestStore_ContractIdempotency(t *testing.T) {
	eventstest.TestIdempotency(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, mongodb.Options{})
		return s
	})
}

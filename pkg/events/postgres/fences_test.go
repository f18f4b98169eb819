package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// An append left open is listed with its backend, floor and state, measured, and ended by
// EndFence, which rolls it back and lets the all-stream move on.
func TestStore_Fences(t *testing.T) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	s, pool := newStore(t, postgres.Options{Metrics: postgres.NewMetrics(reg)})
	if fs, err := s.Fences(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("fences of an idle store: %v, %v", fs, err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var pid int32
	if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	open, err := s.AppendTx(ctx, tx, "order-open", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Append(ctx, "order-after", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := s.Fences(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].PID != pid || fs[0].Floor != open.FirstPosition-1 || fs[0].State != "idle in transaction" || fs[0].Since.IsZero() {
		t.Fatalf("fences %+v, want backend %d with floor %d, idle in transaction", fs, pid, open.FirstPosition-1)
	}

	watch, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.WatchFences(watch, 10*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for gathered(t, reg, "annals_store_open_appends", "", "") != 1 || gathered(t, reg, "annals_store_all_stream_held_seconds", "", "") <= 0 {
		if time.Now().After(deadline) {
			t.Fatal("the open append was not measured")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}

	if err := s.EndFence(ctx, pid); err != nil {
		t.Fatal(err)
	}
	for {
		h, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h >= after.LastPosition {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("head %d after the fence was ended, want %d", h, after.LastPosition)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if page, err := s.ReadAll(ctx, events.AllQuery{Limit: 10}); err != nil || len(page) != 1 || page[0].GlobalPosition != after.FirstPosition {
		t.Errorf("read %v, %v after the open append was ended; want its neighbour alone", page, err)
	}
	for gathered(t, reg, "annals_store_open_appends", "", "") != 0 || gathered(t, reg, "annals_store_all_stream_held_seconds", "", "") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ended append is still measured")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	stop()
	<-done
	if err := s.EndFence(ctx, pid); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("ending it again: %v, want ErrNotFound", err)
	}
}

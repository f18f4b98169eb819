package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// BenchmarkReadAll measures the main read path, a page of the all-stream (GET /v1/events),
// against the real PostgreSQL holding 10,000 events: pages of 1 and 100 events from positions
// spread over the store, with and without a type filter that a tenth of the events match,
// and pages of 100 while another connection appends an event every millisecond, so that each
// read finds positions handed out since the last and looks for open appends (the fence, in
// all.go).
func BenchmarkReadAll(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b, postgres.Options{})
	const total = 10_000
	for i := range total / 100 {
		batch := evs(b, 100, "ItemAdded")
		for j := range batch {
			if j%10 == 0 {
				batch[j].Type = "ItemRemoved"
			}
		}
		if _, err := s.Append(ctx, fmt.Sprintf("order-%d", i), events.NoStream(), batch, events.AppendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		limit     int
		types     []string
		appending bool
	}{
		{"page=1", 1, nil, false},
		{"page=100", 100, nil, false},
		{"page=100/type", 100, []string{"ItemRemoved"}, false},
		{"page=100/appending", 100, nil, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.appending {
				stop := appendEveryMillisecond(b, s)
				defer stop()
			}
			after := int64(0)
			for b.Loop() {
				page, err := s.ReadAll(ctx, events.AllQuery{After: after, Limit: tc.limit, Types: tc.types})
				if err != nil {
					b.Fatal(err)
				}
				if len(page) == 0 {
					b.Fatalf("no event after %d", after)
				}
				after = (after + 997) % (total / 2)
			}
		})
	}
}

// appendEveryMillisecond appends an event a millisecond until the returned stop is called.
func appendEveryMillisecond(b *testing.B, s *postgres.Store) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := s.Append(ctx, "order-more", events.Any(), evs(b, 1, "ItemAdded"), events.AppendOptions{}); err != nil && ctx.Err() == nil {
				b.Error(err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

package benchkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/domain"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"Empty", nil, 0.5, 0},
		{"One", ms(7), 0.99, 7 * time.Millisecond},
		{"MedianOfFour", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"P99OfHundred", ms(slices.Collect(func(yield func(int) bool) {
			for i := 1; i <= 100; i++ {
				if !yield(i) {
					return
				}
			}
		})...), 0.99, 99 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := benchkit.Percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func TestRunClosed(t *testing.T) {
	t.Run("Ops", func(t *testing.T) {
		var n atomic.Int64
		res, err := benchkit.RunClosed(context.Background(), benchkit.Closed{Concurrency: 4, Ops: 103, EventsPerOp: 10}, func() func(context.Context) error {
			return func(context.Context) error { n.Add(1); return nil }
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Ops != 103 || n.Load() != 103 || res.Events != 1030 || res.Latency.Count != 103 {
			t.Errorf("ran %d (counted %d, %d events, %d latencies), want 103 operations of 10 events", n.Load(), res.Ops, res.Events, res.Latency.Count)
		}
	})
	t.Run("Duration", func(t *testing.T) {
		res, err := benchkit.RunClosed(context.Background(), benchkit.Closed{Concurrency: 2, Duration: 50 * time.Millisecond}, func() func(context.Context) error {
			return func(context.Context) error { time.Sleep(time.Millisecond); return nil }
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Ops == 0 || res.Elapsed < 50*time.Millisecond || res.OpsPerSec <= 0 {
			t.Errorf("got %+v, want operations for at least 50ms", res)
		}
	})
	t.Run("Error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := benchkit.RunClosed(context.Background(), benchkit.Closed{Concurrency: 3, Ops: 1000}, func() func(context.Context) error {
			return func(context.Context) error { return boom }
		})
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

func TestMix(t *testing.T) {
	streams, err := benchkit.Mix(5000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := benchkit.Count(streams); n < 5000 || n > 5100 {
		t.Errorf("Mix(5000) holds %d events, want 5000 to a user's streams more", n)
	}
	users := map[string]bool{}
	emails := 0
	for _, s := range streams {
		category, id, _ := strings.Cut(s.ID, "-")
		first := s.Events[0]
		switch category {
		case "user":
			if first.Type != domain.EventUserCreated {
				t.Fatalf("%s starts with %s", s.ID, first.Type)
			}
			users[id] = true
		case "order":
			var created domain.OrderCreated
			if first.Type != domain.EventOrderCreated || json.Unmarshal(first.Data, &created) != nil {
				t.Fatalf("%s starts with %s %s", s.ID, first.Type, first.Data)
			}
			if !users[created.UserID] || created.OrderID != id {
				t.Errorf("%s: order %s of user %s, whose stream does not come first", s.ID, created.OrderID, created.UserID)
			}
		default:
			t.Fatalf("stream %s", s.ID)
		}
		for _, e := range s.Events {
			if !json.Valid(e.Data) {
				t.Errorf("%s: %s data %s", s.ID, e.Type, e.Data)
			}
			if e.Type == domain.EventUserCreated || e.Type == domain.EventOrderConfirmed || e.Type == domain.EventOrderCancelled {
				emails++
			}
		}
	}
	if got := benchkit.Emails(streams); got != emails || got == 0 {
		t.Errorf("Emails = %d, want %d", got, emails)
	}
}

package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// TestMetrics counts appends of every outcome on the real store: the counters by result must
// equal what the appends returned, and appended events only the accepted ones.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	m := postgres.NewMetrics(reg)
	s, _ := newStore(t, postgres.Options{MaxEventsPerStream: 4, Metrics: m})

	byResult := func(r string) float64 {
		t.Helper()
		return gathered(t, reg, "annals_store_appends_total", "result", r)
	}
	for _, r := range []string{"ok", "conflict", "full", "invalid", "error"} {
		if got := byResult(r); got != 0 {
			t.Fatalf("result %s starts at %v, want a series at 0", r, got)
		}
	}

	mustAppend := func(stream string, exp events.ExpectedVersion, n int) {
		t.Helper()
		if _, err := s.Append(ctx, stream, exp, evs(t, n, "X"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend("user-m1", events.NoStream(), 2)
	mustAppend("user-m1", events.Exact(1), 1)
	if _, err := s.Append(ctx, "user-m1", events.Exact(0), evs(t, 1, "X"), events.AppendOptions{}); err == nil {
		t.Fatal("a stale expected version was accepted")
	}
	if _, err := s.Append(ctx, "user-m1", events.Any(), evs(t, 2, "X"), events.AppendOptions{}); err == nil {
		t.Fatal("an append past the limit was accepted")
	}
	if _, err := s.Append(ctx, "user-m2", events.Any(), []events.Event{{Type: "X", Data: []byte("{not json")}}, events.AppendOptions{}); err == nil {
		t.Fatal("invalid JSON was accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cancelled, "user-m3", events.Any(), evs(t, 1, "X"), events.AppendOptions{}); err == nil {
		t.Fatal("an append on a cancelled context succeeded")
	}

	// Concurrent appends with expected version any to a stream may lose races and retry;
	// each still counts once.
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		stream := "user-m4"
		if i%2 == 1 {
			stream = "user-m5"
		}
		wg.Go(func() {
			if _, err := s.Append(ctx, stream, events.Any(), evs(t, 1, "X"), events.AppendOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	want := map[string]float64{"ok": 2 + writers, "conflict": 1, "full": 1, "invalid": 1, "error": 1}
	for r, w := range want {
		if got := byResult(r); got != w {
			t.Errorf("appends with result %s = %v, want %v", r, got, w)
		}
	}
	if got := gathered(t, reg, "annals_store_appended_events_total", "", ""); got != 3+writers {
		t.Errorf("appended events = %v, want %d", got, 3+writers)
	}
	if n, err := testutil.GatherAndCount(reg, "annals_store_append_duration_seconds"); err != nil || n != 5 {
		t.Errorf("duration histograms: %d (err %v), want one per result seen (5)", n, err)
	}
}

// gathered is the value of the counter name whose label has value (any series when label is
// empty), or the sample count of a histogram.
func gathered(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// An append refused for an event over MaxEventBytes counts as too_large, apart from other bad
// input.
func TestMetrics_TooLarge(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, _ := newStore(t, postgres.Options{MaxEventBytes: 16, Metrics: postgres.NewMetrics(reg)})
	if got := gathered(t, reg, "annals_store_appends_total", "result", "too_large"); got != 0 {
		t.Fatalf("result too_large starts at %v, want a series at 0", got)
	}
	big := events.Event{Type: "X", Data: []byte(`"seventeen bytes"`)}
	if _, err := s.Append(t.Context(), "user-m1", events.Any(), []events.Event{big}, events.AppendOptions{}); !errors.Is(err, events.ErrTooLarge) {
		t.Fatalf("append of %d bytes = %v, want ErrTooLarge", big.Size(), err)
	}
	for r, want := range map[string]float64{"too_large": 1, "invalid": 0, "ok": 0} {
		if got := gathered(t, reg, "annals_store_appends_total", "result", r); got != want {
			t.Errorf("appends with result %s = %v, want %v", r, got, want)
		}
	}
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/annals-dev/annals/internal/load"
	"github.com/annals-dev/annals/services/writer/domain"
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
			if got := Percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func TestRunClosed(t *testing.T) {
	t.Run("Ops", func(t *testing.T) {
		var n atomic.Int64
		res, err := RunClosed(context.Background(), Closed{Concurrency: 4, Ops: 103, EventsPerOp: 10}, func() func(context.Context) error {
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
		res, err := RunClosed(context.Background(), Closed{Concurrency: 2, Duration: 50 * time.Millisecond}, func() func(context.Context) error {
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
		_, err := RunClosed(context.Background(), Closed{Concurrency: 3, Ops: 1000}, func() func(context.Context) error {
			return func(context.Context) error { return boom }
		})
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

func TestMix(t *testing.T) {
	streams, err := Mix(5000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := Count(streams); n < 5000 || n > 5100 {
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
	if got := Emails(streams); got != emails || got == 0 {
		t.Errorf("Emails = %d, want %d", got, emails)
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := histogram{bounds: []float64{0.01, 0.02, 0.04}, counts: []float64{10, 90, 100}, count: 100}
	for _, tc := range []struct{ q, want float64 }{{0.05, 0.005}, {0.5, 0.015}, {0.95, 0.03}} {
		if got := h.quantile(tc.q); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (histogram{}).quantile(0.5); got != 0 {
		t.Errorf("quantile of an empty histogram = %v, want 0", got)
	}
}

func TestHistogramDelta(t *testing.T) {
	family := func(count uint64, sum float64, buckets ...uint64) map[string]*dto.MetricFamily {
		var bs []*dto.Bucket
		for i, c := range buckets {
			bs = append(bs, &dto.Bucket{UpperBound: ptr(float64(i + 1)), CumulativeCount: ptr(c)})
		}
		return map[string]*dto.MetricFamily{"h": {Name: ptr("h"), Metric: []*dto.Metric{{
			Label:     []*dto.LabelPair{{Name: ptr("group"), Value: ptr("g")}},
			Histogram: &dto.Histogram{SampleCount: ptr(count), SampleSum: ptr(sum), Bucket: bs},
		}}}}
	}
	d := histogramDelta(family(10, 5, 4, 10), family(30, 25, 14, 30), "h", map[string]string{"group": "g"})
	if d.count != 20 || d.sum != 20 || !slices.Equal(d.counts, []float64{10, 20}) {
		t.Errorf("delta = %+v, want 20 samples summing to 20 in buckets [10 20]", d)
	}
	if d := histogramDelta(family(1, 1, 1), family(2, 2, 2), "h", map[string]string{"group": "other"}); d.count != 0 {
		t.Errorf("another group's delta = %+v, want nothing", d)
	}
}

// TestFigures: a run's measurements give every figure of FigureIDs, each Annals figure set
// against its baseline, and the nine targets judged.
func ptr[T any](v T) *T { return &v }

func TestFigures(t *testing.T) {
	r := &runner{set: DefaultSettings(true, 12)}
	for _, c := range []int{1, 8, 32} {
		r.raw.PGBench = append(r.raw.PGBench, PGBench{Clients: c, TPS: 1000 * float64(c), Latency: Latency{P50: time.Millisecond, P99: 5 * time.Millisecond}})
		r.raw.Commands = append(r.raw.Commands, CommandRun{Clients: c, EventsPerSec: 100 * float64(c),
			Result: load.Result{Throughput: 100 * float64(c), P50: 5 * time.Millisecond, P99: 20 * time.Millisecond}})
	}
	for _, batch := range []int{1, 100} {
		for _, c := range []int{1, 8} {
			r.raw.Appends = append(r.raw.Appends, AppendRun{Batch: batch, Concurrency: c, Result: Throughput{EventsPerSec: float64(700 * batch * c)}})
		}
	}
	r.raw.Producer = Producer{RecordsPerSec: 50_000}
	r.raw.Consumer = Consumer{FetchRecordsPerSec: 100_000}
	r.raw.KafkaLatency = Latencies{P50Ms: 2, P99Ms: 10}
	r.raw.SMTP = SMTP{EmailsPerSec: 500}
	r.raw.Relay = RelayRun{EventsPerSec: 30_000}
	r.raw.NoOp, r.raw.Projector, r.raw.Auditor = Drain{EventsPerSec: 60_000}, Drain{EventsPerSec: 8_000}, Drain{EventsPerSec: 6_000}
	r.raw.Notifier = Drain{EmailsPerSec: 200}
	for range r.set.EndToEndFractions {
		r.raw.EndToEnd = append(r.raw.EndToEnd, EndToEnd{Latency: Latency{P50: 12 * time.Millisecond, P99: 150 * time.Millisecond}})
	}
	baselines, figures, curves := r.figures()
	var got []string
	for _, f := range append(slices.Clone(baselines), figures...) {
		got = append(got, f.ID)
		if f.Unit == "" || f.Value <= 0 {
			t.Errorf("%s: value %v %q", f.ID, f.Value, f.Unit)
		}
	}
	if want := FigureIDs(); !slices.Equal(got, want) {
		t.Errorf("figures:\n got %v\nwant %v", got, want)
	}
	met, missed := 0, 0
	for _, f := range figures {
		if f.Baseline == nil || f.Ratio == nil {
			t.Errorf("%s has no baseline or ratio", f.ID)
		}
		if f.Target != nil {
			if f.Target.Met {
				met++
			} else {
				missed++
			}
		}
	}
	// Single appends at 0.7 and 0.875 of pgbench, batches 100×, the relay 0.6 of PP and 100×
	// the writer, the no-op consumer 0.6 of ConsumerPerformance: met; p99 150 ms: missed.
	if met != 8 || missed != 1 {
		t.Errorf("%d targets met and %d missed, want 8 and 1", met, missed)
	}
	if len(curves) != 4 || len(curves[3].Points) != 3 {
		t.Errorf("curves %+v, want four, the end-to-end one of three points", curves)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {0.3271, "0.327"}, {15.31, "15.3"}, {100, "100"}, {1234567.4, "1,234,567"}, {-4200, "-4,200"}} {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package benchkit

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Latency summarises measured durations.
type Latency struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarise sorts ds and returns their percentiles (nearest rank).
func Summarise(ds []time.Duration) Latency {
	slices.Sort(ds)
	l := Latency{Count: len(ds), P50: Percentile(ds, 0.50), P90: Percentile(ds, 0.90), P99: Percentile(ds, 0.99)}
	if len(ds) > 0 {
		l.Max = ds[len(ds)-1]
	}
	return l
}

// Percentile is the p-th percentile (0 < p <= 1) of sorted by the nearest-rank method: the
// smallest value that at least p of the values do not exceed.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Ms is d in milliseconds, the unit every latency of the report is in.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Closed describes a closed-loop run: Concurrency workers, each starting its next operation
// when its last one returned, for Ops operations in all or, when Ops is 0, until Duration
// has passed.
type Closed struct {
	Concurrency int
	Ops         int
	Duration    time.Duration
	// EventsPerOp is how many events one operation writes, for the events/s figure.
	EventsPerOp int
}

// Throughput is what a closed-loop run measured.
type Throughput struct {
	Ops          int           `json:"ops"`
	Events       int           `json:"events"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	OpsPerSec    float64       `json:"ops_per_sec"`
	EventsPerSec float64       `json:"events_per_sec"`
	Latency      Latency       `json:"latency"`
}

// RunClosed runs the operations that newWorker builds, one worker (and so one state, such as
// a stream of its own) per goroutine, and measures each operation. The first error stops the
// run and is returned.
func RunClosed(ctx context.Context, c Closed, newWorker func() func(context.Context) error) (Throughput, error) {
	if c.Concurrency < 1 {
		return Throughput{}, errors.New("bench: concurrency must be at least 1")
	}
	if c.Ops <= 0 && c.Duration <= 0 {
		return Throughput{}, errors.New("bench: a closed-loop run needs operations or a duration")
	}
	if c.EventsPerOp < 1 {
		c.EventsPerOp = 1
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// With a count, workers take tokens so that the count is exact; with a duration, each
	// worker loops until the deadline, and operations in flight then finish and count.
	var tokens chan struct{}
	if c.Ops > 0 {
		tokens = make(chan struct{}, c.Ops)
		for range c.Ops {
			tokens <- struct{}{}
		}
		close(tokens)
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(c.Duration)
	for range c.Concurrency {
		op := newWorker()
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				if err := op(ctx); err != nil {
					cancel(err)
					return
				}
				local = append(local, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return Throughput{}, err
	}
	n := len(latencies)
	return Throughput{
		Ops: n, Events: n * c.EventsPerOp, Elapsed: elapsed,
		OpsPerSec:    float64(n) / elapsed.Seconds(),
		EventsPerSec: float64(n*c.EventsPerOp) / elapsed.Seconds(),
		Latency:      Summarise(latencies),
	}, nil
}

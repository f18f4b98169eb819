package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// BenchmarkAppend measures appends against the real PostgreSQL: one event per append and
// 100-event batches, by 1 and 8 concurrent appenders, each on its own stream with an exact
// expected version (the writer's path). It reports events/s and the p50/p99 latency of one
// append; scripts/bench.sh sets them beside pgbench's one-INSERT transactions.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, conc := range []int{1, 8} {
			b.Run(fmt.Sprintf("events=%d/conc=%d", batch, conc), func(b *testing.B) {
				s, _ := newStore(b, postgres.Options{})
				payload := events.Event{Type: "ItemAdded", Data: []byte(`{"item":{"id":"sku-1","name":"A thing","price_cents":1999,"quantity":2}}`)}
				batchEvents := slices.Repeat([]events.Event{payload}, batch)
				run(b, conc, batch, func() func(context.Context) error {
					stream := "order-" + uuid.NewString()
					expected := events.NoStream()
					return func(ctx context.Context) error {
						res, err := s.Append(ctx, stream, expected, batchEvents, events.AppendOptions{CorrelationID: "bench", CausationID: "bench"})
						expected = events.Exact(res.LastVersion)
						return err
					}
				})
			})
		}
	}
}

// BenchmarkPlainInsert is pgbench's one-INSERT transaction sent through pgx from Go with the
// same harness, so that the Go client's share of an append's cost can be told apart from the
// store's.
func BenchmarkPlainInsert(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			_, pool := newStore(b, postgres.Options{})
			if _, err := pool.Exec(context.Background(), `create table plain_insert (id bigint generated always as identity primary key,
				stream_id text not null, data jsonb not null, recorded_at timestamptz not null default clock_timestamp())`); err != nil {
				b.Fatal(err)
			}
			run(b, conc, 1, func() func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := pool.Exec(ctx, `insert into plain_insert (stream_id, data) values ($1, $2)`,
						"order-1", `{"item":{"id":"sku-1","name":"A thing","price_cents":1999,"quantity":2}}`)
					return err
				}
			})
		})
	}
}

// run spreads b.N operations over conc workers (each built by newWorker) and reports
// operations/s, events/s and the p50/p99 latency of one operation.
func run(b *testing.B, conc, eventsPerOp int, newWorker func() func(context.Context) error) {
	ctx := context.Background()
	var mu sync.Mutex
	var latencies []time.Duration
	next := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conc {
		op := newWorker()
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/conc+1)
			for range next {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	for i := 0; i < b.N; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(b.N*eventsPerOp)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// BenchmarkAppend measures appends against the real PostgreSQL: one event per append and
// 100-event batches, by 1 and 8 concurrent appenders, each on its own stream with an exact
// expected version (the writer's path). It reports events/s and the p50/p99 latency of one
// append; `annals bench` runs the same workload (internal/benchkit.Appends) beside pgbench's
// one-INSERT transactions.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, conc := range []int{1, 8} {
			b.Run(fmt.Sprintf("events=%d/conc=%d", batch, conc), func(b *testing.B) {
				s, _ := newStore(b, postgres.Options{})
				b.ResetTimer()
				res, err := benchkit.Appends(context.Background(), s, benchkit.Closed{Concurrency: conc, Ops: b.N}, batch)
				if err != nil {
					b.Fatal(err)
				}
				report(b, res)
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
			b.ResetTimer()
			res, err := benchkit.RunClosed(context.Background(), benchkit.Closed{Concurrency: conc, Ops: b.N}, func() func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := pool.Exec(ctx, `insert into plain_insert (stream_id, data) values ($1, $2)`, "order-1", benchkit.AppendPayload)
					return err
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			report(b, res)
		})
	}
}

// report reports operations/s, events/s and the p50/p99 latency of one operation.
func report(b *testing.B, res benchkit.Throughput) {
	b.StopTimer()
	b.ReportMetric(res.OpsPerSec, "ops/s")
	b.ReportMetric(res.EventsPerSec, "events/s")
	b.ReportMetric(benchkit.Ms(res.Latency.P50), "p50-ms")
	b.ReportMetric(benchkit.Ms(res.Latency.P99), "p99-ms")
}

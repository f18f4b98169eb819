package auditlog_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/auditor/auditbench"
)

// BenchmarkAuditor is the auditor's throughput on pre-filled topics: ANNALS_BENCH_EVENTS
// events (100,000 by default; users of 10 events and orders of 20) in topics of 12 partitions,
// consumed by the auditor's own consumer as in production (the group's default batch size,
// one lane, a transaction per batch, the chain's lock, blocked streams in
// PostgreSQL) as the auditor's role, into a fresh log. Each iteration is a fresh schema and
// group; the time runs from the consumer's start to the last entry's commit, and the chain is
// verified after it (auditbench.Drain, which `annals bench` runs too).
// ANNALS_BENCH_BATCH changes the batch size (1000).
func BenchmarkAuditor(b *testing.B) {
	n := envInt(b, "ANNALS_BENCH_EVENTS", 100_000)
	batch := envInt(b, "ANNALS_BENCH_BATCH", 1000)
	users, orders := testenv.Topic(b, 12), testenv.Topic(b, 12)
	dlq := testenv.Topic(b, 1)
	streams := max(1, n/30)
	ues, oes := userEvents(streams, 10), orderEvents(streams, 20)
	publish(b, users, ues, false)
	publish(b, orders, oes, false)
	total := int64(len(ues) + len(oes))

	var elapsed time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		owner, _ := testenv.SchemaPool(b)
		migrateEventStore(b, owner)
		b.StartTimer()
		d, err := auditbench.Drain(context.Background(), owner, benchkit.DrainConfig{
			Consumer: consume.Config{
				Brokers: testenv.KafkaBrokers(b), Group: testenv.UniqueName(b), Topics: []string{users, orders}, DLQTopic: dlq,
				Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: batch,
			},
			Events: int(total), Label: "auditor drain",
		})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += d.Elapsed
	}
	b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds(), "events/s")
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		tb.Fatalf("%s=%q: want a whole number of at least 1", name, s)
	}
	return v
}

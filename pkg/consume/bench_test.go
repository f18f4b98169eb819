package consume_test

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
)

// BenchmarkConsumerNoOp is the runtime's own cost: a group with a handler that does nothing
// reads a pre-filled topic of ANNALS_BENCH_EVENTS events (100,000) in 12 partitions, decoding
// every record, in batches and lanes, committing per batch. Each iteration is a fresh group
// over the same records. It reports events/s and the records' average size (value, key and
// headers), for Kafka's ConsumerPerformance to read records of the same size beside it;
// `annals bench` runs the same drain (internal/benchkit.DrainNoOp) beside ConsumerPerformance.
func BenchmarkConsumerNoOp(b *testing.B) {
	n := 100_000
	if s := os.Getenv("ANNALS_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("ANNALS_BENCH_EVENTS: %v", err)
		}
	}
	topic, dlq := testenv.Topic(b, 12), testenv.Topic(b, 1)
	publish(b, topic, streams("bench", 1000, n/1000))
	total := n / 1000 * 1000
	var elapsed time.Duration // from Run to the last event; joining the group included, leaving not
	var bytes float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := benchkit.DrainNoOp(context.Background(), benchkit.DrainConfig{
			Consumer: consume.Config{
				Brokers: testenv.KafkaBrokers(b), Group: testenv.UniqueName(b), Topics: []string{topic}, DLQTopic: dlq,
				Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: 1000,
			},
			Events: total, Label: "no-op drain",
		})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += d.Elapsed
		bytes = d.RecordBytes
	}
	b.StopTimer()
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(bytes, "record-bytes/event")
}

package consume_test

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/schema"
)

// BenchmarkConsumerNoOp is the runtime's own cost: a group with a handler that does nothing
// reads a pre-filled topic of ANNALS_BENCH_EVENTS events (100,000) in 12 partitions, decoding
// every record, in batches and lanes, committing per batch. Each iteration is a fresh group
// over the same records. It reports events/s and the records' average size (value, key and
// headers), for Kafka's ConsumerPerformance to read records of the same size beside it.
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
	var bytes int64
	var sized atomic.Bool
	b.ResetTimer()
	var elapsed time.Duration // from Run to the last event; joining the group included, leaving not
	for i := 0; i < b.N; i++ {
		var seen atomic.Int64
		done := make(chan struct{})
		h := consume.HandlerFunc(func(_ context.Context, m *consume.Message) error {
			if sized.CompareAndSwap(false, true) {
				bytes = int64(len(m.Value) + len(m.Key))
				for _, h := range m.Headers {
					bytes += int64(len(h.Key) + len(h.Value))
				}
			}
			if seen.Add(1) == int64(total) {
				close(done)
			}
			return nil
		})
		c, err := consume.New(consume.Config{
			Brokers: testenv.KafkaBrokers(b), Group: testenv.UniqueName(b), Topics: []string{topic}, DLQTopic: dlq,
			Decode: consume.SchemaDecoder(schema.Default()), BatchSize: 1000,
		}, h)
		if err != nil {
			b.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		start := time.Now()
		go func() { ran <- c.Run(ctx) }()
		select {
		case <-done:
			elapsed += time.Since(start)
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d events within 5 minutes", seen.Load(), total)
		}
		stop()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(bytes), "record-bytes/event")
}

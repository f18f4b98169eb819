package relay_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// The relay's benchmarks run against the real PostgreSQL and Kafka, with the Avro encoder of
// the services, on topics with KAFKA_TOPIC_PARTITIONS partitions (the configuration's default
// when unset). `annals bench` runs the drain's workload beside Kafka's own ProducerPerformance
// on a topic with the same partition count. Run them one iteration at a time: -benchtime 1x.

// benchEnv is a fresh schema and user and order topics of its own.
type benchEnv struct {
	pool    *pgxpool.Pool
	store   *postgres.Store
	brokers []string
	prefix  string
}

// skipShort skips a relay benchmark under -short.
func skipShort(b *testing.B) {
	b.Helper()
	if testing.Short() {
		b.Skip("the relay's benchmarks need PostgreSQL and Kafka and take tens of seconds; they do not run under -short")
	}
}

func newBenchEnv(b *testing.B, opts postgres.Options) *benchEnv {
	b.Helper()
	pool, _ := testenv.SchemaPool(b)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{pool: pool, store: postgres.New(pool, opts), brokers: testenv.KafkaBrokers(b), prefix: "bench-" + testenv.UniqueName(b)}
	partitions := config.Default().Kafka.TopicPartitions
	if s := os.Getenv("KAFKA_TOPIC_PARTITIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("KAFKA_TOPIC_PARTITIONS=%q is not a partition count", s)
		}
		partitions = n
	}
	topics := []string{kafkawire.Topic(e.prefix, "user"), kafkawire.Topic(e.prefix, "order")}
	for _, topic := range topics {
		if err := relay.EnsureTopics(context.Background(), e.brokers, []relay.Topic{{Name: topic, Partitions: partitions, ReplicationFactor: 1}}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 30 * time.Second}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics})
	})
	return e
}

// startRelay runs a relay with the services' Avro encoder until the returned stop is called.
func (e *benchEnv) startRelay(b *testing.B) (r *relay.Relay, stop func()) {
	b.Helper()
	r, err := relay.New(e.store.Outbox(), relay.SchemaEncoder{Catalog: domain.Catalog()}, relay.Config{Brokers: e.brokers, TopicPrefix: e.prefix})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return r, func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("relay: %v", err)
		}
		r.Close()
	}
}

// itemAdded is an ItemAdded event as the writer records it: one order line.
func itemAdded(i int) events.Event {
	names := []string{"Stoneware mug, 350 ml", "Linen tea towel", "Cast-iron skillet, 26 cm", "Beeswax candle (set of 3)", "Oak chopping board"}
	return events.Event{Type: "ItemAdded", Data: fmt.Appendf(nil, `{"item":{"id":"%s","name":%q,"price_cents":%d,"quantity":%d}}`,
		uuid.NewString(), names[i%len(names)], 499+(i*137)%9500, 1+i%4)}
}

// waitOutboxDrained polls the outbox until it is empty.
func waitOutboxDrained(b *testing.B, pool *pgxpool.Pool, within time.Duration, every time.Duration) {
	b.Helper()
	if err := benchkit.WaitOutboxDrained(context.Background(), pool, within, every, nil, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRelayDrain: an outbox of about 100,000 events of internal/benchkit.Mix (users and
// their orders, each stream written in one append before the clock starts) is published by
// a relay started cold; each iteration times from the relay's start until the outbox is
// empty, that is until the broker has acknowledged every record with acks=all and the relay
// has deleted its row. It reports events/s, the average Avro value (avro-bytes/event) and
// the average record as the broker stores it without framing (record-bytes/event: value,
// key and headers), from a sample of the published records. `annals bench` runs the same
// drain (internal/benchkit.RelayDrain) beside Kafka's ProducerPerformance.
func BenchmarkRelayDrain(b *testing.B) {
	skipShort(b)
	ctx := context.Background()
	var drain time.Duration
	var valueBytes, recordBytes, sampled, total int
	for b.Loop() {
		b.StopTimer()
		e := newBenchEnv(b, postgres.Options{})
		streams, err := benchkit.Mix(100_000, 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := benchkit.Fill(ctx, e.store, streams, 8); err != nil {
			b.Fatal(err)
		}
		total += benchkit.Count(streams)
		r, err := relay.New(e.store.Outbox(), relay.SchemaEncoder{Catalog: domain.Catalog()}, relay.Config{Brokers: e.brokers, TopicPrefix: e.prefix})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		took, err := benchkit.RelayDrain(ctx, e.pool, r, 10*time.Minute, nil)
		if err != nil {
			b.Fatal(err)
		}
		drain += took

		b.StopTimer()
		r.Close()
		values, records, err := benchkit.RecordSizes(ctx, e.brokers, kafkawire.Topic(e.prefix, "order"), 0, 2000)
		if err != nil {
			b.Fatal(err)
		}
		for i := range records {
			valueBytes, recordBytes = valueBytes+values[i], recordBytes+records[i]
		}
		sampled += len(records)
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/drain.Seconds(), "events/s")
	b.ReportMetric(float64(valueBytes)/float64(sampled), "avro-bytes/event")
	b.ReportMetric(float64(recordBytes)/float64(sampled), "record-bytes/event")
}

// BenchmarkRelayLatency: with a relay running as in the writer (appends wake it in-process),
// one single-event append is started every millisecond (1,000 events/s, paced by a ticker and
// spread over 8 appenders so that a slow append does not lower the rate) for 10 seconds.
//
// For each event it measures the time from the return of its Append (its transaction has
// committed) to the moment the relay deletes its outbox row, which the relay does right after
// the broker has acknowledged the record (acks=all): that moment is clock_timestamp() in an
// AFTER DELETE trigger on annals_outbox, added in the benchmark's own schema, and the two
// clocks are those of the same machine. The figure is therefore the commit-to-ack latency
// plus the relay's bookkeeping and one round trip to PostgreSQL after the ack (well under a
// millisecond here); no consumer is involved. It reports p50-ms, p99-ms and the rate reached.
func BenchmarkRelayLatency(b *testing.B) {
	const rate, duration = 1000, 10 * time.Second
	skipShort(b)
	var r *relay.Relay
	e := newBenchEnv(b, postgres.Options{OnAppend: func() { r.Wake() }})
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `
		create table bench_acked (stream_id text not null, first_version bigint not null, deleted_at timestamptz not null);
		create function bench_outbox_deleted() returns trigger language plpgsql as $$
		begin
			insert into bench_acked select stream_id, first_version, clock_timestamp() from gone;
			return null;
		end $$;
		create trigger bench_outbox_deleted after delete on annals_outbox
			referencing old table as gone for each statement execute function bench_outbox_deleted();`); err != nil {
		b.Fatal(err)
	}
	r, stop := e.startRelay(b)
	defer stop()
	// Warm up at the same rate on streams of the same spread for two seconds: the relay's
	// first publishes fetch metadata and open connections, the broker's first appends to each
	// partition of the new topics set their logs up, and the processes' heaps grow to their
	// steady size. None of that is the steady state being measured.
	appendSteadily(b, e.store, rate, 2*time.Second)
	waitOutboxDrained(b, e.pool, time.Minute, 5*time.Millisecond)

	var latencies []time.Duration
	sent, elapsed := 0, time.Duration(0)
	for b.Loop() {
		b.StopTimer()
		if _, err := e.pool.Exec(ctx, `truncate bench_acked`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		committed, took := appendSteadily(b, e.store, rate, duration)
		waitOutboxDrained(b, e.pool, time.Minute, 5*time.Millisecond)
		b.StopTimer()
		latencies = append(latencies, ackLatencies(b, e.pool, committed)...)
		sent, elapsed = sent+len(committed), elapsed+took
		b.StartTimer()
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "events/s")
}

// appendSteadily starts one single-event append every 1/rate seconds for the duration and
// returns when each (stream, version) returned, and how long the appends took.
func appendSteadily(b *testing.B, store *postgres.Store, rate int, duration time.Duration) (map[string]time.Time, time.Duration) {
	b.Helper()
	run := uuid.NewString()[:8]
	jobs := make(chan int, 1024)
	var mu sync.Mutex
	committed := map[string]time.Time{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				// 1,000 streams, so that appends in flight at the same time never share one.
				stream := fmt.Sprintf("order-%s-%d", run, i%1000)
				res, err := store.Append(context.Background(), stream, events.Any(), []events.Event{itemAdded(i)},
					events.AppendOptions{CorrelationID: run, CausationID: run})
				at := time.Now()
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				committed[fmt.Sprintf("%s@%d", stream, res.FirstVersion)] = at
				mu.Unlock()
			}
		})
	}
	// Each tick starts the appends due by then: a tick the runtime drops (a busy machine)
	// delays appends by a tick but does not lower the rate.
	tick := time.NewTicker(time.Second / time.Duration(rate))
	start := time.Now()
	total := int(duration.Seconds() * float64(rate))
	for i := 0; i < total; {
		now := <-tick.C
		for due := min(total, int(now.Sub(start).Seconds()*float64(rate))+1); i < due; i++ {
			select {
			case jobs <- i:
			default:
				b.Fatalf("the appenders fell more than %d appends behind the rate of %d/s", cap(jobs), rate)
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	return committed, time.Since(start)
}

// ackLatencies pairs each committed append with the deletion of its outbox row.
func ackLatencies(b *testing.B, pool *pgxpool.Pool, committed map[string]time.Time) []time.Duration {
	b.Helper()
	rows, err := pool.Query(context.Background(), `select stream_id, first_version, deleted_at from bench_acked`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := make([]time.Duration, 0, len(committed))
	for rows.Next() {
		var stream string
		var version int64
		var at time.Time
		if err := rows.Scan(&stream, &version, &at); err != nil {
			b.Fatal(err)
		}
		if t0, ok := committed[fmt.Sprintf("%s@%d", stream, version)]; ok {
			out = append(out, at.Sub(t0))
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if len(out) != len(committed) {
		b.Fatalf("%d of %d appends have a recorded acknowledgement", len(out), len(committed))
	}
	return out
}

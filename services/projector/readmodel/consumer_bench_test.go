package readmodel_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// orderLife is the events of one order stream in the benchmark: created with two items,
// twelve items added, one removed, confirmed with the total: 16 events.
func orderLife(userID string) []events.Envelope {
	id := uuid.Must(uuid.NewV7()).String()
	stream := "order-" + id
	items := []domain.Item{{ID: "a", Name: "First", PriceCents: 1999, Quantity: 1}, {ID: "b", Name: "Second", PriceCents: 500, Quantity: 3}}
	total := int64(1999 + 1500)
	out := []events.Envelope{ev(stream, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id, UserID: userID, Items: items, TotalCents: total})}
	for i := range 12 {
		it := domain.Item{ID: fmt.Sprintf("x%d", i), Name: "Extra", PriceCents: int64(100 + i), Quantity: 2}
		total += it.PriceCents * it.Quantity
		out = append(out, ev(stream, int64(len(out)), domain.EventItemAdded, domain.ItemAdded{Item: it}))
	}
	total -= 1500
	out = append(out, ev(stream, int64(len(out)), domain.EventItemRemoved, domain.ItemRemoved{ItemID: "b"}))
	out = append(out, ev(stream, int64(len(out)), domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: total}))
	return out
}

// userLife is the events of one user stream: created and its name changed twice.
func userLife() (string, []events.Envelope) {
	id := uuid.Must(uuid.NewV7()).String()
	stream := "user-" + id
	n1, n2 := "Ada L.", "Ada Lovelace"
	return id, []events.Envelope{
		ev(stream, 0, domain.EventUserCreated, domain.UserCreated{UserID: id, Email: id[:8] + "@example.com", Name: "Ada"}),
		ev(stream, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &n1}),
		ev(stream, 2, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &n2}),
	}
}

// BenchmarkProjector is the projector's throughput on pre-filled topics: ANNALS_BENCH_EVENTS
// events (about 100,000; one user of 3 events per 5 orders of 16) in topics of 12 partitions,
// consumed by the projector's own consumer (lanes, one transaction per lane's share of a
// batch, the inbox, blocked streams in PostgreSQL) into fresh read models. Each iteration is a
// fresh schema and group; the time runs from the consumer's start to the last event's commit.
func BenchmarkProjector(b *testing.B) {
	n := 100_000
	if s := os.Getenv("ANNALS_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("ANNALS_BENCH_EVENTS: %v", err)
		}
	}
	users, orders := testenv.Topic(b, 12), testenv.Topic(b, 12)
	dlq := testenv.Topic(b, 1)
	var userEvents, orderEvents []events.Envelope
	for len(userEvents)+len(orderEvents) < n {
		id, ue := userLife()
		userEvents = append(userEvents, ue...)
		for range 5 {
			orderEvents = append(orderEvents, orderLife(id)...)
		}
	}
	publishEnvelopes(b, users, userEvents)
	publishEnvelopes(b, orders, orderEvents)
	total := len(userEvents) + len(orderEvents)

	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		var reg collectors
		c, err := e.proj.Consumer(consume.Config{
			Brokers: testenv.KafkaBrokers(b), Group: testenv.UniqueName(b), Topics: []string{users, orders}, DLQTopic: dlq,
			Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: 1000, Metrics: consume.NewMetrics(&reg),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ctx, stop := context.WithCancel(context.Background())
		start := time.Now()
		ran := make(chan error, 1)
		go func() { ran <- c.Run(ctx) }()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			// The runtime counts an event as processed once its transaction has committed.
			// Counting the inbox instead, a scan of every event applied so far, took a good
			// part of the database's time when polled; it runs only to confirm the end, since
			// the runtime counts an event that is delivered again twice.
			if reg.sum(b, "annals_consumer_processed_total") >= total {
				var applied int
				if err := e.pool.QueryRow(ctx, `select count(*) from annals_inbox`).Scan(&applied); err != nil {
					b.Fatal(err)
				}
				if applied == total {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d events processed within 5 minutes", reg.sum(b, "annals_consumer_processed_total"), total)
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		stop()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "events/s")
}

// collectors is a prometheus.Registerer that keeps what is registered on it, so that one
// metric can be read without gathering all the others.
type collectors []prometheus.Collector

func (r *collectors) Register(c prometheus.Collector) error   { *r = append(*r, c); return nil }
func (r *collectors) MustRegister(cs ...prometheus.Collector) { *r = append(*r, cs...) }
func (r *collectors) Unregister(prometheus.Collector) bool    { return false }

// sum is the sum of the series of the counter named name.
func (r collectors) sum(tb testing.TB, name string) int {
	tb.Helper()
	n := 0.0
	for _, c := range r {
		descs := make(chan *prometheus.Desc, 16)
		c.Describe(descs)
		close(descs)
		d := <-descs
		if d == nil || !strings.Contains(d.String(), `fqName: "`+name+`"`) {
			continue
		}
		ms := make(chan prometheus.Metric, 64)
		go func() { c.Collect(ms); close(ms) }()
		for m := range ms {
			var out dto.Metric
			if err := m.Write(&out); err != nil {
				tb.Fatal(err)
			}
			n += out.GetCounter().GetValue()
		}
	}
	return int(n)
}

// publishEnvelopes writes events as the relay does: Avro, key = stream id, murmur2.
func publishEnvelopes(tb testing.TB, topic string, evs []events.Envelope) {
	tb.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 0, len(evs))
	for i, e := range evs {
		e.GlobalPosition = int64(i + 1)
		value, fp, err := domain.Catalog().Encode(e)
		if err != nil {
			tb.Fatalf("encode %s: %v", e.Type, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(e.StreamID), Value: value, Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(schema.ContentTypeAvro)},
			{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
		}})
	}
	for len(msgs) > 0 {
		k := min(len(msgs), 1000)
		if err := w.WriteMessages(context.Background(), msgs[:k]...); err != nil {
			tb.Fatalf("publish: %v", err)
		}
		msgs = msgs[k:]
	}
}

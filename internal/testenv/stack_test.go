package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
)

// TestPostgres queries the real server through pgx/v5 and round-trips rows through a table in
// an isolated schema.
func TestPostgres(t *testing.T) {
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()

	var version string
	if err := pool.QueryRow(ctx, "show server_version").Scan(&version); err != nil {
		t.Fatalf("show server_version: %v", err)
	}
	t.Logf("PostgreSQL %s, schema %s", version, schema)

	if _, err := pool.Exec(ctx, "create table items (id int primary key, name text not null)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "insert into items select g, 'item-' || g from generate_series(1, 100) g"); err != nil {
		t.Fatal(err)
	}
	var n int
	var last string
	if err := pool.QueryRow(ctx, "select count(*), max(name) filter (where id = 100) from items").Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if got, want := n, 100; got != want {
		t.Errorf("count = %d, want %d", got, want)
	}
	if got, want := last, "item-100"; got != want {
		t.Errorf("name of 100 = %q, want %q", got, want)
	}
	var currentSchema string
	if err := pool.QueryRow(ctx, "select current_schema()").Scan(&currentSchema); err != nil {
		t.Fatal(err)
	}
	if currentSchema != schema {
		t.Errorf("current_schema() = %q, want %q", currentSchema, schema)
	}
}

// TestKafka produces through the real broker with kafka-go, consumes in a consumer group with
// explicit commits, and checks that a second member of the same group resumes after the
// committed offset: nothing lost, nothing redelivered, order kept per key.
func TestKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Topic(t, 3)
	group := "test-" + testenv.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const n = 60
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "stream-%d", i%5), Value: fmt.Appendf(nil, "%d", i)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}

	newReader := func() *kafka.Reader {
		return kafka.NewReader(kafka.ReaderConfig{
			Brokers:     brokers,
			GroupID:     group,
			Topic:       topic,
			StartOffset: kafka.FirstOffset,
			MaxWait:     100 * time.Millisecond,
		})
	}
	seen := map[string][]int{} // key -> values in the order consumed
	consume := func(r *kafka.Reader, count int) {
		t.Helper()
		for range count {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			var v int
			fmt.Sscanf(string(m.Value), "%d", &v)
			seen[string(m.Key)] = append(seen[string(m.Key)], v)
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
	}

	first := newReader()
	consume(first, n/2)
	if err := first.Close(); err != nil {
		t.Fatalf("close first reader: %v", err)
	}
	second := newReader()
	defer second.Close()
	consume(second, n/2)

	total := 0
	for key, values := range seen {
		total += len(values)
		if !slices.IsSorted(values) {
			t.Errorf("key %s consumed out of order: %v", key, values)
		}
		if len(slices.Compact(slices.Clone(values))) != len(values) {
			t.Errorf("key %s consumed twice: %v", key, values)
		}
	}
	if total != n {
		t.Errorf("consumed %d messages, want %d", total, n)
	}

	// The broker's committed offsets account for every message.
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	committed := int64(0)
	for _, p := range resp.Topics[topic] {
		if p.CommittedOffset > 0 {
			committed += p.CommittedOffset
		}
	}
	if committed != n {
		t.Errorf("committed offsets add up to %d, want %d", committed, n)
	}
}

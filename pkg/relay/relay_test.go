package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

// The checks every outbox passes through the relay (every event published once and in order,
// late commits, two relays, abrupt stops, held streams and their release, holds in a large
// round, the read budget, the backlog) are relaytest.Run's, run against the PostgreSQL outbox in pkg/events/postgres. The
// tests here are of the relay's own work on that outbox: record limits, batches, topics,
// broker refusals, metrics.

// jsonEncoder is a stand-in for the Avro encoder: the envelope as JSON. Events of type
// "Poison" cannot be encoded.
type jsonEncoder struct{}

func (jsonEncoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	if e.Type == "Poison" {
		return nil, "", 0, errors.New("no schema for event type Poison")
	}
	b, err := json.Marshal(e)
	return b, "application/json", 42, err
}

type env struct {
	store   *postgres.Store
	pool    *pgxpool.Pool
	brokers []string
	prefix  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	e := &env{store: postgres.New(pool, postgres.Options{}), pool: pool, brokers: testenv.KafkaBrokers(t), prefix: "test-" + testenv.UniqueName(t)}
	topics := []relay.Topic{{Name: kafkawire.Topic(e.prefix, "user"), Partitions: 3, ReplicationFactor: 1}, {Name: kafkawire.Topic(e.prefix, "order"), Partitions: 3, ReplicationFactor: 1}}
	if err := relay.EnsureTopics(context.Background(), e.brokers, topics, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: e.topics()})
	})
	return e
}

// start runs a relay until the test ends.
func (e *env) start(t *testing.T, cfg relay.Config) *relay.Relay {
	t.Helper()
	return e.startWith(t, jsonEncoder{}, cfg)
}

// startWith runs a relay with the encoder until the test ends.
func (e *env) startWith(t *testing.T, enc relay.Encoder, cfg relay.Config) *relay.Relay {
	t.Helper()
	cfg.Brokers, cfg.TopicPrefix = e.brokers, e.prefix
	r, _ := relaytest.Start(t, e.store.Outbox(), enc, cfg)
	return r
}

func (e *env) append(t *testing.T, stream string, n int, typ string) {
	t.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{Type: typ, Data: fmt.Appendf(nil, `{"i":%d}`, i), Metadata: map[string]string{"user_agent": "test"}}
	}
	if _, err := e.store.Append(context.Background(), stream, events.Any(), evs, events.AppendOptions{CorrelationID: "corr", CausationID: "cause"}); err != nil {
		t.Fatal(err)
	}
}

// topics are the names of the env's topics.
func (e *env) topics() []string {
	return []string{kafkawire.Topic(e.prefix, "user"), kafkawire.Topic(e.prefix, "order")}
}

// consume reads every record of the env's topics until want records arrived or the deadline.
func (e *env) consume(t *testing.T, want int, within time.Duration) []relaytest.Record {
	t.Helper()
	return relaytest.Consume(t, e.brokers, e.topics(), within, func(recs []relaytest.Record) bool { return len(recs) >= want })
}

func waitOutboxEmpty(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), `select count(*) from annals_outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox rows left after 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelay_HoldsWithReasons: an append that cannot be encoded, or whose record is over the
// record limit, holds its stream with the reason; it holds nothing else.
func TestRelay_HoldsWithReasons(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.append(t, "order-p", 1, "Something")
	e.append(t, "order-p", 1, "Poison")
	e.append(t, "order-p", 1, "Something")
	big := events.Event{Type: "Something", Data: []byte(`{"blob":"` + strings.Repeat("x", 5000) + `"}`)}
	if _, err := e.store.Append(ctx, "order-big", events.NoStream(), []events.Event{big}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	e.append(t, "order-ok", 2, "Something")
	e.start(t, relay.Config{MaxRecordBytes: 4096})
	recs := e.consume(t, 3, time.Minute)
	got := relaytest.ByStream(recs)
	if fmt.Sprint(got["order-p"]) != "[0]" || fmt.Sprint(got["order-ok"]) != "[0 1]" || len(got["order-big"]) != 0 {
		t.Errorf("published %v; want order-p 0, order-ok 0 and 1, nothing of order-big", got)
	}
	var holds []string
	waitFor(t, "two holds", func() bool {
		hs, err := e.store.Outbox().Holds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		holds = holds[:0]
		for _, h := range hs {
			holds = append(holds, fmt.Sprintf("%s@%d: %s", h.StreamID, h.FirstVersion, h.Reason))
		}
		slices.Sort(holds)
		return len(holds) == 2
	})
	if !strings.Contains(holds[0], "order-big@0: record of") || !strings.Contains(holds[0], "over the limit of 4096 bytes") ||
		holds[1] != "order-p@1: no schema for event type Poison" {
		t.Errorf("holds = %q", holds)
	}
	if got := e.published(t); fmt.Sprint(got["order-p"]) != "[0]" {
		t.Errorf("order-p published %v, want [0]", got["order-p"])
	}
}

// TestRelay_ByteBudget: rounds larger than the per-partition byte budget are cut, between
// appends, over several windows of encoding; every event is still published once, in order.
func TestRelay_ByteBudget(t *testing.T) {
	e := newEnv(t)
	const streams, appends, per = 60, 5, 10
	want := map[string]int64{}
	for range appends {
		for s := range streams {
			stream := fmt.Sprintf("order-b%02d", s)
			e.append(t, stream, per, "Something")
			want[stream] += per
		}
	}
	e.start(t, relay.Config{MaxBatchBytes: 100 << 10}) // about a third of the 3,000 events a round
	recs := e.consume(t, streams*appends*per, time.Minute)
	if dups := relaytest.CheckOrder(t, recs, want); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	waitOutboxEmpty(t, e.pool)
}

// TestRelay_BacklogWhilePublishingFails: with the brokers unreachable, the publishing relay
// still measures its backlog, so that the age of the oldest unpublished event grows on
// /metrics while the publish errors count, which is what the outbox alert watches.
func TestRelay_BacklogWhilePublishingFails(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewPedanticRegistry()
	closed := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	r, err := relay.New(e.store.Outbox(), jsonEncoder{}, relay.Config{
		Brokers: []string{closed}, TopicPrefix: e.prefix, Metrics: relay.NewMetrics(reg),
		RetryBackoff: 20 * time.Millisecond, StatsInterval: 50 * time.Millisecond, WriteTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	e.append(t, "user-backlog", 3, "UserCreated")

	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	deadline := time.Now().Add(30 * time.Second)
	var oldest, errs, rows float64
	for {
		oldest, errs, rows = gauge("annals_relay_oldest_unpublished_seconds"), gauge("annals_relay_publish_errors_total"), gauge("annals_relay_outbox_backlog_rows")
		if oldest >= 1 && errs >= 2 && rows == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: oldest unpublished %.2f s, publish errors %v, backlog rows %v; want the age growing past 1 s with errors and 1 row", oldest, errs, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leader := gauge("annals_relay_leader"); leader != 1 {
		t.Errorf("leader = %v, want 1", leader)
	}
}

// closedPort is a port on which nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

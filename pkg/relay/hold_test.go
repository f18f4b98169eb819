package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

// published reads every record of the env's topics up to their current ends, and returns each
// stream's versions in the order they arrived.
func (e *env) published(t *testing.T) map[string][]int64 {
	t.Helper()
	return relaytest.ByStream(relaytest.Published(t, e.brokers, e.topics()...))
}

// waitOutbox waits until done holds for the outbox's rows per stream.
func (e *env) waitOutbox(t *testing.T, what string, done func(rows map[string]int) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rows := map[string]int{}
		res, err := e.pool.Query(context.Background(), `select stream_id, count(*) from annals_outbox group by stream_id`)
		if err != nil {
			t.Fatal(err)
		}
		for res.Next() {
			var s string
			var n int
			if err := res.Scan(&s, &n); err != nil {
				t.Fatal(err)
			}
			rows[s] = n
		}
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		if done(rows) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, still waiting for %s; outbox rows by stream: %v", what, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatedEncoder is jsonEncoder until the schema of Poison is deployed: then it encodes Poison
// events too.
type gatedEncoder struct{ deployed atomic.Bool }

func (g *gatedEncoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	if e.Type == "Poison" && g.deployed.Load() {
		e.Type = "Poison (now with a schema)"
	}
	return jsonEncoder{}.Encode(e)
}

// metric reads a counter's or gauge's value, or a histogram's count, from reg; labels pick
// one series.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() != labels[i+1] {
						continue series
					}
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, still waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelay_HoldDeletedByHand: deleting a hold's row by hand, rather than with Retry, returns
// the stream's appends to the flow within the relay's stats interval.
func TestRelay_HoldDeletedByHand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.append(t, "order-h", 1, "Poison")
	e.append(t, "order-h", 1, "Something")
	enc := &gatedEncoder{}
	e.startWith(t, enc, relay.Config{StatsInterval: 50 * time.Millisecond})
	waitFor(t, "order-h held", func() bool {
		var n int
		if err := e.pool.QueryRow(ctx, `select count(*) from annals_outbox where stream_id = 'order-h' and held`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 2
	})
	enc.deployed.Store(true)
	if _, err := e.pool.Exec(ctx, `delete from annals_outbox_holds`); err != nil {
		t.Fatal(err)
	}
	e.waitOutbox(t, "order-h published", func(rows map[string]int) bool { return len(rows) == 0 })
	if got := e.published(t)["order-h"]; fmt.Sprint(got) != "[0 1]" {
		t.Errorf("order-h published %v, want [0 1]", got)
	}
}

// sameTopicPartition returns n order streams whose keys land in the same partition of a topic
// of the given partitions as the key first, first among them.
func samePartition(first string, n, partitions int) []string {
	var b kafka.Murmur2Balancer
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	p := b.Balance(kafka.Message{Key: []byte(first)}, parts...)
	out := []string{first}
	for i := 0; len(out) < n; i++ {
		s := fmt.Sprintf("order-s%d", i)
		if b.Balance(kafka.Message{Key: []byte(s)}, parts...) == p {
			out = append(out, s)
		}
	}
	return out
}

// newEnvWithTopicConfig is newEnv with topics created with the given topic configuration.
func newEnvWithTopicConfig(t *testing.T, config map[string]string) *env {
	t.Helper()
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	e := &env{store: postgres.New(pool, postgres.Options{}), pool: pool, brokers: testenv.KafkaBrokers(t), prefix: "test-" + testenv.UniqueName(t)}
	var entries []kafka.ConfigEntry
	for k, v := range config {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	names := []string{kafkawire.Topic(e.prefix, "user"), kafkawire.Topic(e.prefix, "order")}
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 30 * time.Second}
	var topics []kafka.TopicConfig
	for _, n := range names {
		topics = append(topics, kafka.TopicConfig{Topic: n, NumPartitions: 3, ReplicationFactor: 1, ConfigEntries: entries})
	}
	res, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	for n, err := range res.Errors {
		if err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
	t.Cleanup(func() {
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	return e
}

// TestRelay_TopicSizeLimit: on a topic whose max.message.bytes is small, an event whose record
// is over it is set aside with the reason and holds only its stream; the other streams of its
// partition are published.
func TestRelay_TopicSizeLimit(t *testing.T) {
	e := newEnvWithTopicConfig(t, map[string]string{"max.message.bytes": "16384"})
	streams := samePartition("order-big", 4, 3)
	big := events.Event{Type: "Something", Data: []byte(`{"blob":"` + strings.Repeat("x", 30000) + `"}`)}
	if _, err := e.store.Append(context.Background(), "order-big", events.NoStream(), []events.Event{big}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	e.append(t, "order-big", 1, "Something")
	for _, s := range streams[1:] {
		e.append(t, s, 2, "Something")
	}
	e.start(t, relay.Config{})
	e.waitOutbox(t, "every stream but order-big published", func(rows map[string]int) bool {
		for s := range rows {
			if s != "order-big" {
				return false
			}
		}
		return rows["order-big"] == 2
	})
	got := e.published(t)
	if len(got["order-big"]) != 0 {
		t.Errorf("order-big published %v, want nothing", got["order-big"])
	}
	for _, s := range streams[1:] {
		if fmt.Sprint(got[s]) != "[0 1]" {
			t.Errorf("%s published %v, want [0 1]", s, got[s])
		}
	}
	hs, err := e.store.Outbox().Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].StreamID != "order-big" || hs[0].FirstVersion != 0 ||
		!strings.Contains(hs[0].Reason, "over the limit of 16384 bytes of topic "+kafkawire.Topic(e.prefix, "order")+" (max.message.bytes)") {
		t.Errorf("holds = %+v, want order-big held at 0 for the topic's max.message.bytes", hs)
	}
}

// TestRelay_TopicLimitLowered: when a topic's max.message.bytes is lowered while the relay
// runs, the broker refuses the batch holding a record over the new limit; the relay reads the
// limit again, holds that record's stream with the reason, and the other streams of its
// partition are published.
func TestRelay_TopicLimitLowered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	topic := kafkawire.Topic(e.prefix, "order")
	e.append(t, "order-warm", 1, "Something")
	e.start(t, relay.Config{RetryBackoff: 50 * time.Millisecond})
	e.consume(t, 1, time.Minute) // the relay has read the topic's limit, Kafka's default

	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	res, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: "16384", ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			t.Fatal(r.Error)
		}
	}
	// The broker applies the change on its own time: wait until it refuses a large record.
	waitFor(t, "the broker to refuse a record over the new limit", func() bool {
		res, err := client.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0, RequiredAcks: kafka.RequireAll,
			Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte("probe")), Value: kafka.NewBytes(make([]byte, 30000))})})
		return err == nil && errors.Is(res.Error, kafka.MessageSizeTooLarge)
	})

	streams := samePartition("order-big", 4, 3)
	big := events.Event{Type: "Something", Data: []byte(`{"blob":"` + strings.Repeat("x", 30000) + `"}`)}
	if _, err := e.store.Append(ctx, "order-big", events.NoStream(), []events.Event{big}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams[1:] {
		e.append(t, s, 2, "Something")
	}
	e.waitOutbox(t, "every stream but order-big published", func(rows map[string]int) bool { return len(rows) == 1 && rows["order-big"] == 1 })
	got := e.published(t)
	for _, s := range streams[1:] {
		if fmt.Sprint(got[s]) != "[0 1]" {
			t.Errorf("%s published %v, want [0 1]", s, got[s])
		}
	}
	hs, err := e.store.Outbox().Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].StreamID != "order-big" || !strings.Contains(hs[0].Reason, "over the limit of 16384 bytes") {
		t.Errorf("holds = %+v, want order-big held for the new limit", hs)
	}
}

// TestRelay_BrokerRefusesARecord: a record the broker refuses for good (its timestamp is older
// than the topic accepts) is set aside with the broker's reason and holds only its stream; the
// other streams of its partition are published.
func TestRelay_BrokerRefusesARecord(t *testing.T) {
	e := newEnvWithTopicConfig(t, map[string]string{"message.timestamp.before.max.ms": "3600000"})
	streams := samePartition("order-old", 4, 3)
	e.append(t, "order-old", 2, "Something")
	if _, err := e.pool.Exec(context.Background(), `update annals_events set recorded_at = now() - interval '2 days' where stream_id = 'order-old' and version = 0`); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams[1:] {
		e.append(t, s, 2, "Something")
	}
	e.start(t, relay.Config{RetryBackoff: 50 * time.Millisecond})
	e.waitOutbox(t, "every stream but order-old published", func(rows map[string]int) bool {
		for s := range rows {
			if s != "order-old" {
				return false
			}
		}
		return rows["order-old"] == 1
	})
	got := e.published(t)
	if len(got["order-old"]) != 0 {
		t.Errorf("order-old published %v, want nothing", got["order-old"])
	}
	for _, s := range streams[1:] {
		if fmt.Sprint(got[s]) != "[0 1]" {
			t.Errorf("%s published %v, want [0 1]", s, got[s])
		}
	}
	hs, err := e.store.Outbox().Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].StreamID != "order-old" || !strings.Contains(hs[0].Reason, "the broker refused the append's records: [32] Invalid Timestamp") {
		t.Errorf("holds = %+v, want order-old held for its timestamp", hs)
	}
}

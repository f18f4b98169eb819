package notifiertest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
)

// Topics are the topics of one test deployment: <Prefix>.user, <Prefix>.order and the
// notifier group's dead-letter topic <Prefix>.dlq.<group>.
type Topics struct {
	Prefix     string
	User       string
	Order      string
	DLQ        string
	Partitions int
}

// NewTopics creates the topics with the given number of partitions under a prefix of the
// test's own; they are deleted when the test ends.
func NewTopics(tb testing.TB, partitions int, group string) Topics {
	tb.Helper()
	prefix := "test." + testenv.UniqueName(tb)
	t := Topics{Prefix: prefix, User: kafkawire.Topic(prefix, "user"), Order: kafkawire.Topic(prefix, "order"), DLQ: kafkawire.DeadLetterTopic(prefix, group), Partitions: partitions}
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Timeout: 20 * time.Second}
	names := []string{t.User, t.Order, t.DLQ}
	var cfgs []kafka.TopicConfig
	for _, n := range names {
		cfgs = append(cfgs, kafka.TopicConfig{Topic: n, NumPartitions: partitions, ReplicationFactor: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: cfgs})
	if err != nil {
		tb.Fatalf("create topics: %v", err)
	}
	for _, n := range names {
		if err := resp.Errors[n]; err != nil {
			tb.Fatalf("create topic %s: %v", n, err)
		}
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			tb.Logf("delete topics: %v", err)
		}
	})
	// A new topic's partitions take a moment to get a leader that answers.
	WaitFor(tb, 30*time.Second, "the new topics' partitions to have leaders", func() bool {
		for _, n := range names {
			if _, err := endOffsets(client, n, partitions); err != nil {
				return false
			}
		}
		return true
	})
	return t
}

// endOffsets returns the end offset of each partition of topic.
func endOffsets(client *kafka.Client, topic string, partitions int) (map[int]int64, error) {
	req := make([]kafka.OffsetRequest, partitions)
	for i := range req {
		req[i] = kafka.LastOffsetOf(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("%s/%d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	if len(out) != partitions {
		return nil, fmt.Errorf("%s: %d partitions answered, want %d", topic, len(out), partitions)
	}
	return out, nil
}

// Event is an event to publish. EventID is a new UUIDv7 and RecordedAt now when zero.
type Event struct {
	EventID    uuid.UUID
	StreamID   string
	Version    int64
	Type       string
	Data       any // marshalled to JSON
	RecordedAt time.Time
	// Metadata goes in the metadata header, as the relay publishes it: the actor of the
	// command (internal/auth's actor, actor_kind, actor_issuer). None when empty.
	Metadata map[string]string
}

// Publish writes the events to their category's topic as the relay does (Avro single-object
// encoding, key = stream id, murmur2, the relay's headers) and returns their envelopes, in
// order.
func Publish(tb testing.TB, t Topics, evs ...Event) []events.Envelope {
	tb.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000,
	}
	defer w.Close()
	out := make([]events.Envelope, 0, len(evs))
	msgs := make([]kafka.Message, 0, len(evs))
	for i, ev := range evs {
		if ev.EventID == uuid.Nil {
			ev.EventID = uuid.Must(uuid.NewV7())
		}
		if ev.RecordedAt.IsZero() {
			ev.RecordedAt = time.Now().UTC()
		}
		data, err := json.Marshal(ev.Data)
		if err != nil {
			tb.Fatal(err)
		}
		env := events.Envelope{
			EventID: ev.EventID, StreamID: ev.StreamID, Category: events.Category(ev.StreamID), Version: ev.Version,
			GlobalPosition: int64(i + 1), Type: ev.Type, Data: data, RecordedAt: ev.RecordedAt.UTC().Truncate(time.Microsecond),
			Metadata: ev.Metadata,
		}
		value, fp, err := domain.Catalog().Encode(env)
		if err != nil {
			tb.Fatalf("encode %s: %v", ev.Type, err)
		}
		topic := t.User
		if env.Category == "order" {
			topic = t.Order
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(env.StreamID), Value: value, Time: env.RecordedAt,
			Headers: []kafka.Header{
				{Key: kafkawire.HeaderEventID, Value: []byte(env.EventID.String())},
				{Key: kafkawire.HeaderEventType, Value: []byte(env.Type)},
				{Key: kafkawire.HeaderStreamVersion, Value: strconv.AppendInt(nil, env.Version, 10)},
				{Key: kafkawire.HeaderGlobalPosition, Value: strconv.AppendInt(nil, env.GlobalPosition, 10)},
				{Key: kafkawire.HeaderRecordedAt, Value: []byte(env.RecordedAt.Format(time.RFC3339Nano))},
				{Key: kafkawire.HeaderContentType, Value: []byte(schema.ContentTypeAvro)},
				{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
			}})
		if len(ev.Metadata) > 0 {
			md, err := json.Marshal(ev.Metadata)
			if err != nil {
				tb.Fatal(err)
			}
			last := &msgs[len(msgs)-1]
			last.Headers = append(last.Headers, kafka.Header{Key: kafkawire.HeaderMetadata, Value: md})
		}
		testenv.Sign(&msgs[len(msgs)-1]) // as the relay does, with the key the tests' services accept
		out = append(out, env)
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.WriteMessages(ctx, msgs[:n]...)
		cancel()
		if err != nil {
			tb.Fatalf("publish: %v", err)
		}
		msgs = msgs[n:]
	}
	return out
}

// ReadAll returns every record of a topic, partition by partition.
func ReadAll(tb testing.TB, topic string, partitions int) []kafka.Message {
	tb.Helper()
	brokers := testenv.KafkaBrokers(tb)
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ends, err := endOffsets(client, topic, partitions)
	if err != nil {
		tb.Fatalf("list offsets: %v", err)
	}
	var out []kafka.Message
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		end := ends[p]
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				_ = r.Close()
				tb.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset+1 >= end {
				break
			}
		}
		cancel()
		_ = r.Close()
	}
	return out
}

// Header returns the value of a record's header, or "".
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// WaitFor polls cond until it holds, or fails the test after within.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package wiring_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/schema"
)

// settingsConsumer is the consume.Config that wiring.ConsumerConfig makes of the environment
// vars for the service's group, reading topic (with 1 partition per call of testenv.Topic)
// and dead-lettering to dlq.
func settingsConsumer(t *testing.T, vars map[string]string, service, topic, dlq string) (consume.Config, *config.Config) {
	t.Helper()
	vars["EVENT_SIGNING_KEY"] = testenv.SigningKey
	vars["KAFKA_TOPIC_PREFIX"] = "test-" + testenv.UniqueName(t)
	cfg, err := config.Load("", func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cc, err := wiring.ConsumerConfig(cfg, nil, cfg.ConsumerGroup(service), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc.Brokers, cc.Topics, cc.DLQTopic = testenv.KafkaBrokers(t), []string{topic}, dlq
	cc.Decode = consume.SchemaDecoder(domain.Catalog()) // the records below are not signed
	cc.Backoff, cc.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	return cc, cfg
}

// produce writes one event record per stream id, in order, as the relay does (Avro, key =
// stream id, murmur2).
func produce(t *testing.T, topic string, streams ...string) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	var msgs []kafka.Message
	for _, s := range streams {
		value, fp, err := domain.Catalog().Encode(events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: s, GlobalPosition: 1, Type: "UserDeactivated",
			Data: json.RawMessage(`{"reason":"test"}`), RecordedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(s), Value: value, Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(schema.ContentTypeAvro)},
			{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
		}})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// run runs a consumer of h until the test ends.
func run(t *testing.T, cc consume.Config, h consume.Handler) {
	t.Helper()
	c, err := consume.New(cc, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s")
		}
	})
}

// poll polls cond until it holds, failing the test after within.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handled is a handler that records the offsets it handled by partition, how many handlers
// ran at once at most, and fails the offsets that fail says.
type handled struct {
	mu       sync.Mutex
	offsets  map[int][]int64
	attempts map[int64]int
	inFlight int
	most     int
	fail     func(offset int64) bool
}

func newHandled() *handled { return &handled{offsets: map[int][]int64{}, attempts: map[int64]int{}} }

func (h *handled) Handle(_ context.Context, m *consume.Message) error {
	h.mu.Lock()
	h.inFlight++
	h.most = max(h.most, h.inFlight)
	h.attempts[m.Offset]++
	failing := h.fail != nil && h.fail(m.Offset)
	h.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // long enough for parallel lanes to overlap
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inFlight--
	if failing {
		return fmt.Errorf("offset %d fails", m.Offset)
	}
	h.offsets[m.Partition] = append(h.offsets[m.Partition], m.Offset)
	return nil
}

func (h *handled) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.offsets {
		n += len(o)
	}
	return n
}

func (h *handled) has(partition int, offset int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.offsets[partition] {
		if o == offset {
			return true
		}
	}
	return false
}

// TestConsumerConfig_SynchronousHandlers: with ASYNC_EVENT_PROCESSING=false a group's
// handler runs one event at a time, in partition order, however many streams a batch holds.
func TestConsumerConfig_SynchronousHandlers(t *testing.T) {
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	cc, _ := settingsConsumer(t, map[string]string{"ASYNC_EVENT_PROCESSING": "false"}, "notifier", topic, dlq)
	var streams []string
	for v := range 5 {
		for s := range 30 {
			_ = v
			streams = append(streams, fmt.Sprintf("user-%d", s))
		}
	}
	produce(t, topic, streams...)
	h := newHandled()
	run(t, cc, h)
	poll(t, 60*time.Second, "every event handled", func() bool { return h.count() == len(streams) })

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.most != 1 {
		t.Errorf("at most %d handlers ran at once, want 1", h.most)
	}
	for p, offs := range h.offsets {
		for i := range offs {
			if offs[i] != int64(i) {
				t.Errorf("partition %d handled %v; want its offsets in order, each once", p, offs)
				break
			}
		}
	}
}

// TestConsumerConfig_PeriodicProjection: with REAL_TIME_PROJECTIONS=false the projector's
// group applies what arrived once per PROJECTION_INTERVAL: an event that arrives after a
// round is not applied before the next one, and is applied then.
func TestConsumerConfig_PeriodicProjection(t *testing.T) {
	const interval = 3 * time.Second
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	cc, _ := settingsConsumer(t, map[string]string{"REAL_TIME_PROJECTIONS": "false", "PROJECTION_INTERVAL": interval.String()},
		"projector", topic, dlq)
	h := newHandled()
	run(t, cc, h)
	produce(t, topic, "user-1")
	poll(t, 30*time.Second, "the first event applied", func() bool { return h.has(0, 0) })
	applied := time.Now() // the round that applied it started before this, and ends within its linger
	time.Sleep(600 * time.Millisecond)
	produce(t, topic, "user-2")

	// The next round starts an interval after the last one started (at most a linger before
	// the first event was applied): until then the second event waits.
	for time.Since(applied) < interval-800*time.Millisecond {
		if h.has(0, 1) {
			t.Fatalf("the second event was applied %s after the first, before the next round (every %s)", time.Since(applied), interval)
		}
		time.Sleep(20 * time.Millisecond)
	}
	poll(t, 3*interval, "the second event applied at the next round", func() bool { return h.has(0, 1) })
	t.Logf("applied %s after the first", time.Since(applied))
}

// TestConsumerConfig_StopsAtFailingEvent: with EVENT_HANDLER_ERROR_HANDLING=false a failing
// event is tried once, not dead-lettered, and its partition stops there, nothing committed
// past it, with a stopped block an operator lists; releasing the block (annals dlq release)
// tries the event again and the partition flows on.
func TestConsumerConfig_StopsAtFailingEvent(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	cc, _ := settingsConsumer(t, map[string]string{"EVENT_HANDLER_ERROR_HANDLING": "false"}, "auditor", topic, dlq)
	blocks := consume.PostgresBlocks(pool)
	cc.Blocks, cc.BlockRefresh = blocks, 200*time.Millisecond
	var broken sync.Mutex
	failing := true
	h := newHandled()
	h.fail = func(offset int64) bool {
		broken.Lock()
		defer broken.Unlock()
		return failing && offset == 1
	}
	produce(t, topic, "user-a", "user-b", "user-c", "user-b", "user-d")
	run(t, cc, h)

	var stopped consume.BlockedStream
	poll(t, 30*time.Second, "the failing event's stream listed as stopped", func() bool {
		list, err := blocks.List(context.Background(), cc.Group)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			stopped = list[0]
		}
		return len(list) == 1
	})
	if !stopped.Stopped || stopped.StreamID != "user-b" || stopped.Offset != 1 {
		t.Errorf("block %+v; want user-b stopped at offset 1", stopped)
	}
	// Several block refreshes and retry backoffs later: no retry, nothing past it.
	time.Sleep(1500 * time.Millisecond)
	// Other streams' events of the same batch may have run beside it in lanes of their own;
	// they are not committed, and are delivered again after the release.
	h.mu.Lock()
	tries, later := h.attempts[1], h.attempts[3]
	h.mu.Unlock()
	if tries != 1 {
		t.Errorf("the failing event was tried %d times, want 1 (no retries)", tries)
	}
	if later != 0 {
		t.Errorf("the stream's later event was handled %d times; want its partition stopped before it", later)
	}
	if got := committedOffset(t, cc.Group, topic); got > 1 {
		t.Errorf("committed offset %d, want at most 1: nothing past the failing event", got)
	}
	if end := endOffset(t, dlq); end != 0 {
		t.Errorf("%d dead letters, want none", end)
	}

	broken.Lock()
	failing = false
	broken.Unlock()
	if _, err := blocks.Release(context.Background(), cc.Group, "user-b"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "every event applied after the release", func() bool {
		for o := range int64(5) {
			if !h.has(0, o) {
				return false
			}
		}
		return true
	})
	poll(t, 30*time.Second, "the group committed past every event", func() bool { return committedOffset(t, cc.Group, topic) == 5 })
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.attempts[1] != 2 {
		t.Errorf("the failing event was tried %d times in all, want 2 (once more after the release)", h.attempts[1])
	}
	if _, err := blocks.Get(context.Background(), cc.Group, "user-b"); !errors.Is(err, consume.ErrNotBlocked) {
		t.Errorf("after the release: %v, want not blocked", err)
	}
}

func committedOffset(t *testing.T, group, topic string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 10 * time.Second}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[topic][0].CommittedOffset
}

func endOffset(t *testing.T, topic string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 10 * time.Second}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[topic][0].LastOffset
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
)

// TestDLQCmd parks two streams of a running consumer group behind a handler that fails for
// them, lists them, redrives the first once the handler is fixed (its parked events are
// applied in order, once, by the running consumer, and it is released) and releases the
// second (its next event is applied without a restart, the parked ones are not).
func TestDLQCmd(t *testing.T) {
	ctx := context.Background()
	pool, schemaName := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	brokers := testenv.KafkaBrokers(t)
	prefix := "test-" + testenv.UniqueName(t)
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "KAFKA_TOPIC_PREFIX": prefix,
		"KAFKA_TOPIC_PARTITIONS": "2", "DATABASE_URL": url + sep + "search_path=" + schemaName,
		"EVENT_SIGNING_KEY": testenv.SigningKey}
	cfg, err := config.Load("../../config/event_sourcing.tsk", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, tp := range wiring.Topics(cfg) {
		topics = append(topics, tp.Name)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics}) })
	if code, _, errOut := runCLI(t, env, "topics"); code != 0 {
		t.Fatalf("annals topics: %s", errOut)
	}

	const redriven, released = "order-00000000-0000-7000-8000-00000000000a", "order-00000000-0000-7000-8000-00000000000b"
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	applied := map[string][]int64{}
	h := consume.HandlerFunc(func(_ context.Context, m *consume.Message) error {
		e := m.Event
		if broken.Load() && (e.StreamID == redriven || e.StreamID == released) && e.Version == 1 {
			return consume.Permanent(errors.New("cannot apply: broken on purpose"))
		}
		mu.Lock()
		defer mu.Unlock()
		applied[e.StreamID] = append(applied[e.StreamID], e.Version)
		return nil
	})
	group := cfg.ConsumerGroup("notifier")
	cc, err := wiring.ConsumerConfig(cfg, pool, group, slog.New(slog.NewTextHandler(testLog{t}, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc.Blocks, cc.BlockRefresh = consume.PostgresBlocks(pool), 200*time.Millisecond
	c, err := consume.New(cc, h)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	t.Cleanup(func() { stop(); <-done })

	other := "order-00000000-0000-7000-8000-00000000000c"
	dlqPublish(t, brokers, cfg.TopicName("order"), []string{redriven, released, other}, 0, 4)
	waitUntil(t, 60*time.Second, "the streams to block", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied[other]) == 4 && len(c.Blocked()) == 2
	})

	// The streams block at their first failure; their later events reach the dead-letter
	// topic as the consumer goes on, so the list is read until it has them all.
	var code int
	var out, errOut string
	listed := func() bool {
		code, out, errOut = runCLI(t, env, "dlq", "list", "--group", "notifier")
		return code == 0 && strings.Contains(out, "dead letters in "+cfg.DLQTopic(group)+": 6 (4 parked")
	}
	deadline := time.Now().Add(30 * time.Second)
	for !listed() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if code != 0 || !strings.Contains(out, "group "+group+": 2 blocked stream(s)") || !strings.Contains(out, redriven) ||
		!strings.Contains(out, "dead letters in "+cfg.DLQTopic(group)+": 6 (4 parked") {
		t.Fatalf("dlq list = %d:\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "dlq", "redrive", "--group", "notifier", "--stream", redriven, "--dry-run")
	if code != 0 || !strings.Contains(out, "3 dead-lettered and parked event(s)") || !strings.Contains(out, "dry run") {
		t.Fatalf("dlq redrive --dry-run = %d:\n%s\n%s", code, out, errOut)
	}
	if b, err := consume.PostgresBlocks(pool).Get(ctx, group, redriven); err != nil || b.Redrive {
		t.Fatalf("after a dry run the block is %+v, %v; want it unrequested", b, err)
	}

	broken.Store(false)
	code, out, errOut = runCLI(t, env, "dlq", "redrive", "--group", "notifier", "--stream", redriven, "--wait", "30s")
	if code != 0 || !strings.Contains(out, "done: 3 event(s) applied in order") {
		t.Fatalf("dlq redrive = %d:\n%s\n%s", code, out, errOut)
	}
	mu.Lock()
	got := fmt.Sprint(applied[redriven])
	mu.Unlock()
	if got != "[0 1 2 3]" {
		t.Errorf("the redriven stream's events were applied as %s, want [0 1 2 3]", got)
	}

	code, out, errOut = runCLI(t, env, "dlq", "release", "--group", "notifier", "--stream", released)
	if code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("dlq release = %d:\n%s\n%s", code, out, errOut)
	}
	waitUntil(t, 10*time.Second, "the consumer to read the release", func() bool { return len(c.Blocked()) == 0 })
	dlqPublish(t, brokers, cfg.TopicName("order"), []string{released, redriven}, 4, 5)
	waitUntil(t, 30*time.Second, "the streams' next events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(applied[released]) == "[0 4]" && fmt.Sprint(applied[redriven]) == "[0 1 2 3 4]"
	})

	code, _, errOut = runCLI(t, env, "dlq", "redrive", "--group", "notifier", "--stream", released)
	if code != 1 || !strings.Contains(errOut, "is not blocked") {
		t.Errorf("redrive of a stream that is not blocked = %d: %s", code, errOut)
	}
	for _, args := range [][]string{{"dlq"}, {"dlq", "frobnicate"}, {"dlq", "redrive", "--group", "notifier"}, {"dlq", "list", "extra"}} {
		if code, _, _ := runCLI(t, env, args...); code != 2 {
			t.Errorf("annals %v = %d, want 2 (usage)", args, code)
		}
	}
}

// dlqPublish writes versions [from, to) of each stream to topic as the relay does.
func dlqPublish(t *testing.T, brokers []string, topic string, streams []string, from, to int64) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for v := from; v < to; v++ {
		for _, s := range streams {
			env := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: s, Category: "order", Version: v, GlobalPosition: 1,
				Type: domain.EventItemRemoved, Data: json.RawMessage(`{"item_id":"x"}`), RecordedAt: time.Now().UTC().Truncate(time.Microsecond)}
			value, fp, err := domain.Catalog().Encode(env)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte(s), Value: value, Headers: []kafka.Header{
				{Key: kafkawire.HeaderEventID, Value: []byte(env.EventID.String())},
				{Key: kafkawire.HeaderEventType, Value: []byte(env.Type)},
				{Key: kafkawire.HeaderStreamVersion, Value: []byte(strconv.FormatInt(v, 10))},
				{Key: kafkawire.HeaderContentType, Value: []byte(schema.ContentTypeAvro)},
				{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
			}})
			testenv.Sign(&msgs[len(msgs)-1])
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

package consume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/logctx"
	"github.com/annals-dev/annals/pkg/schema"
)

// rec is one event record the tests publish: stream s, version v.
type rec struct {
	stream string
	v      int64
}

// publish writes the events as the relay does (Avro, key = stream id, murmur2) and returns
// their event ids by stream and version.
func publish(t testing.TB, topic string, recs []rec) map[rec]uuid.UUID {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000,
	}
	defer w.Close()
	msgs, ids := encode(t, recs)
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			t.Fatalf("publish: %v", err)
		}
		msgs = msgs[n:]
	}
	return ids
}

// encode makes the records of the events as the relay does, and returns them with their
// event ids by stream and version.
func encode(t testing.TB, recs []rec) ([]kafka.Message, map[rec]uuid.UUID) {
	t.Helper()
	ids := map[rec]uuid.UUID{}
	msgs := make([]kafka.Message, 0, len(recs))
	for _, r := range recs {
		id := uuid.Must(uuid.NewV7())
		ids[r] = id
		value, fp, err := domain.Catalog().Encode(events.Envelope{
			EventID: id, StreamID: r.stream, Version: r.v, GlobalPosition: 1, Type: "UserDeactivated",
			Data: json.RawMessage(`{"reason":"test"}`), RecordedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(r.stream), Value: value, Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(schema.ContentTypeAvro)},
			{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
		}})
	}
	return msgs, ids
}

// streams makes n events for each of s streams, interleaved across streams.
func streams(prefix string, s, n int) []rec {
	var out []rec
	for v := range n {
		for i := range s {
			out = append(out, rec{fmt.Sprintf("user-%s-%d", prefix, i), int64(v)})
		}
	}
	return out
}

// recorder is a handler that remembers what it saw and checks that no version of a stream
// is handled before the previous one was.
type recorder struct {
	mu         sync.Mutex
	seen       map[rec]int // deliveries per event
	high       map[string]int64
	total      int
	violations []string
	fail       func(m *consume.Message) error
	changed    chan struct{}
}

func newRecorder() *recorder {
	return &recorder{seen: map[rec]int{}, high: map[string]int64{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) Handle(_ context.Context, m *consume.Message) error {
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := m.Event
	h, ok := r.high[e.StreamID]
	if !ok {
		h = -1
	}
	if e.Version > h+1 {
		r.violations = append(r.violations, fmt.Sprintf("%s v%d handled after v%d", e.StreamID, e.Version, h))
	}
	r.high[e.StreamID] = max(h, e.Version)
	r.seen[rec{e.StreamID, e.Version}]++
	r.total++
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type running struct {
	c    *consume.Consumer
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg consume.Config, h consume.Handler) *running {
	t.Helper()
	c, err := consume.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{c: c, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.halt(t) })
	return r
}

// halt stops the consumer and checks that it left within its drain bound.
func (r *running) halt(t *testing.T) {
	t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

func config(t *testing.T, topics []string, dlq, group string) consume.Config {
	return consume.Config{
		Brokers: testenv.KafkaBrokers(t), Group: group, Topics: topics, DLQTopic: dlq,
		Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: 200,
		Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		RebalanceTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second,
		Logger: testLogger(t),
	}
}

// committed returns the group's committed offsets on topic by partition.
func committed(t *testing.T, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 10 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// ends returns the end offset of each partition of topic.
func ends(t *testing.T, topic string, partitions int) map[int]int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 10 * time.Second}
	req := make([]kafka.OffsetRequest, partitions)
	for i := range req {
		req[i] = kafka.LastOffsetOf(i)
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.LastOffset
	}
	return out
}

// dead reads every record of the dead-letter topic.
func dead(t *testing.T, topic string, partitions int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p, end := range ends(t, topic, partitions) {
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers(t), Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset+1 >= end {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestConsumer_EveryEventOnceInStreamOrder(t *testing.T) {
	topic, dlq := testenv.Topic(t, 6), testenv.Topic(t, 2)
	recs := streams("a", 100, 30)
	publish(t, topic, recs)
	h := newRecorder()
	group := testenv.UniqueName(t)
	r := start(t, config(t, []string{topic}, dlq, group), h)
	waitFor(t, 60*time.Second, "every event", func() bool { return h.count() == len(recs) })
	r.halt(t)
	if len(h.violations) > 0 {
		t.Fatalf("%d order violations, first: %s", len(h.violations), h.violations[0])
	}
	if h.total != len(recs) {
		t.Errorf("%d deliveries of %d events; want each once in an undisturbed run", h.total, len(recs))
	}
	if !caughtUp(t, group, topic, 6) {
		t.Errorf("committed %v, want the end offsets %v", committed(t, group, topic, 6), ends(t, topic, 6))
	}
	if n := len(dead(t, dlq, 2)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

func TestConsumer_OneLaneIsOneOrder(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	recs := streams("b", 20, 10)
	publish(t, topic, recs)
	var mu sync.Mutex
	var got []rec
	cfg := config(t, []string{topic}, dlq, testenv.UniqueName(t))
	cfg.Lanes = 1
	r := start(t, cfg, consume.HandlerFunc(func(_ context.Context, m *consume.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, rec{m.Event.StreamID, m.Event.Version})
		return nil
	}))
	waitFor(t, 60*time.Second, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(recs) })
	r.halt(t)
	if fmt.Sprint(got) != fmt.Sprint(recs) {
		t.Errorf("one lane handled the partition out of its order")
	}
}

func TestConsumer_PoisonGoesToDLQAndParksItsStream(t *testing.T) {
	topic, dlq := testenv.Topic(t, 4), testenv.Topic(t, 2)
	recs := streams("c", 50, 10)
	ids := publish(t, topic, recs)
	poison := rec{"user-c-7", 3}
	h := newRecorder()
	var attempts sync.Map
	h.fail = func(m *consume.Message) error {
		if m.Event.StreamID == poison.stream && m.Event.Version == poison.v {
			n, _ := attempts.LoadOrStore(m.Offset, new(int))
			*n.(*int)++
			return errors.New("cannot apply: broken on purpose")
		}
		return nil
	}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Attempts = 4
	cfg.Blocks = consume.PostgresBlocks(migrated(t))
	logs := &lockedBuffer{}
	cfg.Logger = slog.New(logctx.Handler(slog.NewJSONHandler(logs, nil)))
	r := start(t, cfg, h)
	// Every other stream finishes; the poisoned one stops at version 2.
	want := len(recs) - 7
	waitFor(t, 60*time.Second, "the other streams", func() bool { return h.count() == want })
	waitFor(t, 30*time.Second, "the commit to reach the end", func() bool {
		return caughtUp(t, group, topic, 4)
	})
	r.halt(t)
	for v := int64(3); v < 10; v++ {
		if h.seen[rec{poison.stream, v}] != 0 {
			t.Errorf("%s v%d was applied behind the dead letter", poison.stream, v)
		}
	}
	letters := dead(t, dlq, 2)
	if len(letters) != 7 {
		t.Fatalf("%d dead letters, want the poison and its 6 later events", len(letters))
	}
	sort.Slice(letters, func(i, j int) bool {
		return header(letters[i], "original-offset") < header(letters[j], "original-offset")
	})
	for _, m := range letters {
		if header(m, "event-id") == "" && string(m.Key) == "" {
			t.Errorf("dead letter lost its key and headers")
		}
		if n, _ := strconv.Atoi(header(m, "original-offset")); n < 0 {
			t.Errorf("bad original-offset header")
		}
	}
	var poisonLetter *kafka.Message
	for i, m := range letters {
		d, err := domain.Catalog().Decode(m.Value)
		if err != nil {
			t.Fatalf("dead letter value: %v", err)
		}
		if d.Envelope.EventID == ids[poison] {
			poisonLetter = &letters[i]
		}
	}
	if poisonLetter == nil {
		t.Fatal("the poison event is not in the dead-letter topic")
	}
	if got := header(*poisonLetter, "error"); got != "cannot apply: broken on purpose" {
		t.Errorf("error header %q", got)
	}
	if got := header(*poisonLetter, "attempts"); got != "4" {
		t.Errorf("attempts header %q, want 4", got)
	}
	if got := header(*poisonLetter, "original-topic"); got != topic {
		t.Errorf("original-topic header %q", got)
	}
	parked := 0
	for _, m := range letters {
		if m.Offset != poisonLetter.Offset || m.Partition != poisonLetter.Partition {
			if e := header(m, "error"); len(e) > 7 && e[:7] == "parked:" {
				parked++
			}
		}
	}
	if parked != 6 {
		t.Errorf("%d parked letters, want 6", parked)
	}
	// The dead letter's log line names its event, once, with its correlation id.
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"consume: dead-lettered"`) && strings.Contains(l, ids[poison].String()) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no dead-lettered log line for event %s:\n%s", ids[poison], logs.String())
	}
	if strings.Count(line, `"event_id"`) != 1 || strings.Count(line, `"correlation_id"`) != 1 {
		t.Errorf("dead-lettered log line, want event_id and correlation_id once each: %s", line)
	}
	total := 0
	attempts.Range(func(_, v any) bool { total += *v.(*int); return true })
	if total != 4 {
		t.Errorf("the poison was tried %d times, want 4", total)
	}

	// A restarted member still parks the stream's newer events: the block outlives it.
	more := []rec{{poison.stream, 10}, {"user-c-8", 10}}
	publish(t, topic, more)
	r2 := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the other stream's new event", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.seen[more[1]] == 1
	})
	waitFor(t, 30*time.Second, "the commit to reach the end", func() bool {
		return caughtUp(t, group, topic, 4)
	})
	r2.halt(t)
	if h.seen[more[0]] != 0 {
		t.Error("a blocked stream's new event was applied after a restart")
	}
}

// caughtUp reports whether the group has committed the end offset of every partition of
// topic that has records.
func caughtUp(t *testing.T, group, topic string, partitions int) bool {
	t.Helper()
	got := committed(t, group, topic, partitions)
	for p, end := range ends(t, topic, partitions) {
		if end > 0 && got[p] != end {
			return false
		}
	}
	return true
}

// lockedBuffer is a bytes.Buffer that log lines from several goroutines can share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
	"github.com/annals-dev/annals/pkg/signing"
)

// runRelay runs a relay with enc until the outbox is empty, then stops it.
func (e *env) runRelay(t *testing.T, enc relay.Encoder, cfg relay.Config) {
	t.Helper()
	cfg.Brokers, cfg.TopicPrefix = e.brokers, e.prefix
	r, err := relay.New(e.store.Outbox(), enc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitOutboxEmpty(t, e.pool)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("relay: %v", err)
	}
	r.Close()
}

// A deployment switches EVENT_SERIALIZATION from avro to msgpack, then to protobuf, while a
// stream goes on: its topic holds records of three formats, each signed over its bytes, and
// one consumer's decoder reads them all, in order, by their content types.
func TestSchemaEncoder_SwitchFormats(t *testing.T) {
	e := newEnv(t)
	k, err := signing.ParseKey("test-1:" + "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := signing.NewSigner(k)
	verifier, _ := signing.NewVerifier(k)
	stream := "user-" + uuid.NewString()
	data := []string{
		`{"user_id":"` + strings.TrimPrefix(stream, "user-") + `","email":"ada@example.com","name":"Ada"}`,
		`{"name":"Ada King","email":null}`,
		`{"name":null,"email":"ada@example.org"}`,
		`{"reason":"asked to close the account"}`,
	}
	types := []string{domain.EventUserCreated, domain.EventUserProfileUpdated, domain.EventUserProfileUpdated, domain.EventUserDeactivated}
	formats := []string{relay.FormatAvro, relay.FormatMsgpack, relay.FormatProtobuf, relay.FormatJSON}
	for i, f := range formats {
		ev := events.Event{Type: types[i], SchemaVersion: 1, Data: json.RawMessage(data[i]), Metadata: map[string]string{"step": f}}
		if _, err := e.store.Append(context.Background(), stream, events.Any(), []events.Event{ev}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		e.runRelay(t, relay.SchemaEncoder{Catalog: domain.Catalog(), Format: f}, relay.Config{Signer: signer})
	}

	topic := kafkawire.Topic(e.prefix, "user")
	decode := consume.NewDecoder(consume.DecoderConfig{Catalog: domain.Catalog(), Verifier: verifier})
	msgs := readAll(t, e.brokers, topic, len(formats))
	wantCT := []string{schema.ContentTypeAvro, schema.ContentTypeMsgpack, schema.ContentTypeProtobuf, schema.ContentTypeJSON}
	for i, m := range msgs {
		if ct := header(m, kafkawire.HeaderContentType); ct != wantCT[i] {
			t.Errorf("record %d: content-type %q, want %q", i, ct, wantCT[i])
		}
		got, err := decode(m)
		if err != nil {
			t.Fatalf("record %d (%s): %v", i, formats[i], err)
		}
		if got.Version != int64(i) || got.Type != types[i] || got.Metadata["step"] != formats[i] {
			t.Errorf("record %d: %s v%d of %s, metadata %v", i, got.Type, got.Version, got.StreamID, got.Metadata)
		}
		if string(got.Data) != data[i] {
			t.Errorf("record %d: data %s, want %s", i, got.Data, data[i])
		}
		tampered := m
		tampered.Value = append(bytes.Clone(m.Value), 0)
		if _, err := decode(tampered); !consume.IsQuarantined(err) {
			t.Errorf("record %d with a byte more: %v, want quarantined (the signature covers the value)", i, err)
		}
	}
	consumeAll(t, e.brokers, topic, verifier, types, data)
	readWithPython(t, e.brokers, topic, msgs, data)
}

// consumeAll runs the consumer runtime over topic, as a service would: its handler must get
// the stream's events in order, whatever format each record has, and nothing dead-lettered.
func consumeAll(t *testing.T, brokers []string, topic string, verifier *signing.Verifier, types, data []string) {
	t.Helper()
	var mu sync.Mutex
	var got []*consume.Message
	handled := make(chan struct{}, len(types))
	h := consume.HandlerFunc(func(_ context.Context, m *consume.Message) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		handled <- struct{}{}
		return nil
	})
	c, err := consume.New(consume.Config{
		Brokers: brokers, Group: "formats-" + testenv.UniqueName(t), Topics: []string{topic}, DLQTopic: testenv.Topic(t, 1),
		Decode:         consume.NewDecoder(consume.DecoderConfig{Catalog: domain.Catalog(), Verifier: verifier}),
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		RebalanceTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.After(time.Minute)
	for range types {
		select {
		case <-handled:
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("the consumer handled %d of %d records in a minute", len(got), len(types))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	for i, m := range got {
		if m.Event.Version != int64(i) || m.Event.Type != types[i] || string(m.Event.Data) != data[i] {
			t.Errorf("handled %d: %s v%d %s; want %s v%d %s", i, m.Event.Type, m.Event.Version, m.Event.Data, types[i], i, data[i])
		}
	}
}

func readAll(t *testing.T, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One stream: one partition holds it. Find it by reading each in turn.
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range meta.Topics[0].Partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		var out []kafka.Message
		for len(out) < n {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			m, err := r.FetchMessage(pctx)
			pcancel()
			if err != nil {
				break
			}
			out = append(out, m)
		}
		r.Close()
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("no partition of %s holds the %d records", topic, n)
	return nil
}

func header(m kafka.Message, name string) string {
	for _, h := range m.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

// pythonReader is the Python with msgpack, protobuf, grpcio-tools and confluent-kafka that
// `scripts/stack.sh install pyreaders` makes: $ANNALS_PYREADERS, else in the stack's cache.
func pythonReader(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ANNALS_PYREADERS"); p != "" {
		return p
	}
	cache := os.Getenv("ANNALS_CACHE_DIR")
	if cache == "" {
		if base, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(base, "annals")
		}
	}
	p := filepath.Join(cache, "pyreaders", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		if testing.Short() {
			t.Skip("the Python readers are not installed (scripts/stack.sh install pyreaders): skipped under -short")
		}
		t.Fatal("the Python readers are not installed: run scripts/stack.sh install pyreaders (make test does), or set ANNALS_PYREADERS")
	}
	return p
}

// readWithPython has Python's msgpack and protobuf packages read the records from Kafka, and
// checks that they see the fields the Go decoder saw.
func readWithPython(t *testing.T, brokers []string, topic string, msgs []kafka.Message, data []string) {
	t.Helper()
	py := pythonReader(t)
	files := map[string]string{}
	for _, in := range domain.Catalog().Schemas() {
		files[in.FingerprintHex] = fmt.Sprintf("%s.v%d.proto", in.Type, in.Version)
	}
	fj, _ := json.Marshal(files)
	protoDir, err := filepath.Abs(filepath.Join("..", "..", "internal", "domain", "avro"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "read_formats.py"), strings.Join(brokers, ","), topic, fmt.Sprint(len(msgs)), protoDir, string(fj))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_formats.py: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(msgs) {
		t.Fatalf("Python read %d records, want %d:\n%s", len(lines), len(msgs), out)
	}
	for i, line := range lines {
		var rec struct {
			ContentType string         `json:"content_type"`
			Value       map[string]any `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		m := msgs[i]
		if rec.ContentType != header(m, kafkawire.HeaderContentType) {
			t.Errorf("record %d: Python saw %q", i, rec.ContentType)
		}
		if rec.ContentType == schema.ContentTypeAvro || rec.ContentType == schema.ContentTypeJSON {
			continue
		}
		if got := rec.Value["stream_id"]; got != string(m.Key) {
			t.Errorf("record %d (%s): stream_id %v, want %s", i, rec.ContentType, got, m.Key)
		}
		if got := rec.Value["event_id"]; got != header(m, kafkawire.HeaderEventID) {
			t.Errorf("record %d (%s): event_id %v, want %s", i, rec.ContentType, got, header(m, kafkawire.HeaderEventID))
		}
		var want map[string]any
		_ = json.Unmarshal([]byte(data[i]), &want)
		for k, v := range want {
			got, present := rec.Value[k]
			if v == nil && !present && rec.ContentType == schema.ContentTypeProtobuf {
				continue // an unset optional field
			}
			if got != v {
				t.Errorf("record %d (%s): %s = %v, want %v", i, rec.ContentType, k, got, v)
			}
		}
		switch rec.ContentType {
		case schema.ContentTypeMsgpack:
			if _, ok := rec.Value["recorded_at"].(string); !ok {
				t.Errorf("record %d: msgpack recorded_at %v, want an RFC 3339 string", i, rec.Value["recorded_at"])
			}
		case schema.ContentTypeProtobuf:
			// int64 fields are strings in protobuf's JSON mapping.
			if rec.Value["version"] != fmt.Sprint(i) {
				t.Errorf("record %d: protobuf version %v, want %d", i, rec.Value["version"], i)
			}
		}
	}
}

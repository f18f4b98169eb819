package consume_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
)

// olderCatalog is the domain's catalog as a consumer built before UserProfileUpdated v2 has
// it.
func olderCatalog(t testing.TB) *schema.Catalog {
	t.Helper()
	files := fstest.MapFS{}
	entries, err := fs.ReadDir(domain.Schemas(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "UserProfileUpdated.v2.avsc" || e.Name() == "UserProfileUpdated.v2.proto" {
			continue
		}
		b, err := fs.ReadFile(domain.Schemas(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = &fstest.MapFile{Data: b}
	}
	c, err := schema.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A rolling upgrade that deploys the writer first: it registers its schemas in the catalog
// table and publishes UserProfileUpdated v2 events, which consumers still running the older
// catalog do not know. They read them as v1 through the catalog table, in order, and nothing
// goes to the dead-letter topic.
func TestConsumer_ReadsANewerWritersEvents(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	if err := domain.Catalog().Register(ctx, pool); err != nil {
		t.Fatal(err)
	}
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	relay := signer(t, relayKey)
	var msgs []kafka.Message
	want := map[uuid.UUID]string{}
	for i := range 20 {
		e := events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: fmt.Sprintf("user-u-%d", i%4), Version: int64(i / 4), GlobalPosition: int64(i + 1),
			Type: "UserProfileUpdated", Data: json.RawMessage(fmt.Sprintf(`{"name":"N%d","email":"u%d@example.com"}`, i, i)),
			RecordedAt: time.Now().UTC(),
		}
		value, fp, err := domain.Catalog().Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		m := kafka.Message{Key: []byte(e.StreamID), Value: value, Headers: []kafka.Header{
			{Key: kafkawire.HeaderEventID, Value: []byte(e.EventID.String())},
			{Key: kafkawire.HeaderContentType, Value: []byte(schema.ContentTypeAvro)},
			{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
		}}
		relay.Sign(&m)
		msgs = append(msgs, m)
		want[e.EventID] = fmt.Sprintf(`{"name":"N%d"}`, i)
	}
	write(t, topic, msgs...)

	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Decode = consume.NewDecoder(consume.DecoderConfig{
		Catalog: olderCatalog(t), Verifier: verifier(t, relayKey), Lookup: schema.TableLookup(pool),
	})
	h := newRecorder()
	got := map[uuid.UUID]string{}
	h.fail = func(m *consume.Message) error {
		got[m.Event.EventID] = string(m.Event.Data) // one lane per stream; streams differ
		return nil
	}
	cfg.Lanes = 1
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the commit to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r.halt(t)
	if n := len(dead(t, dlq, 1)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if len(h.violations) > 0 {
		t.Errorf("order violation: %s", h.violations[0])
	}
	for id, data := range want {
		if got[id] != data {
			t.Errorf("event %s: data %q, want %q (read as v1)", id, got[id], data)
		}
	}
}

// A record the relay signed whose schema is in neither the consumer's catalog nor the
// catalog table yet is not the record's fault: the writer registers its schemas before it
// publishes, so the registration is on its way. Processing pauses, dead-letters nothing, and
// goes on once the schema is registered.
func TestConsumer_WaitsForAWritersRegistration(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	relay := signer(t, relayKey)
	e := events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: "user-w-1", Version: 0, GlobalPosition: 1,
		Type: "UserProfileUpdated", Data: json.RawMessage(`{"name":"N","email":"n@example.com"}`), RecordedAt: time.Now().UTC(),
	}
	value, fp, err := domain.Catalog().Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message{Key: []byte(e.StreamID), Value: value, Headers: []kafka.Header{
		{Key: kafkawire.HeaderContentType, Value: []byte(schema.ContentTypeAvro)},
		{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
	}}
	relay.Sign(&m)
	write(t, topic, m)

	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Decode = consume.NewDecoder(consume.DecoderConfig{
		Catalog: olderCatalog(t), Verifier: verifier(t, relayKey), Lookup: schema.TableLookup(pool),
	})
	reg := prometheus.NewPedanticRegistry()
	cfg.Metrics = consume.NewMetrics(reg)
	h := newRecorder()
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "processing to pause twice", func() bool {
		return metricSum(t, reg, "annals_consumer_stalls_total") >= 2
	})
	if h.count() != 0 || len(dead(t, dlq, 1)) != 0 || caughtUp(t, group, topic, 1) {
		t.Fatalf("handled %d, dead-lettered %d, committed %v while the schema was unknown; want nothing",
			h.count(), len(dead(t, dlq, 1)), committed(t, group, topic, 1))
	}
	if err := domain.Catalog().Register(ctx, pool); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the event once its schema is registered", func() bool { return h.count() == 1 })
	r.halt(t)
	if n := len(dead(t, dlq, 1)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

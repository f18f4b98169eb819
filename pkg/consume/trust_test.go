package consume_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
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
	"github.com/annals-dev/annals/pkg/signing"
)

const (
	relayKey = "relay-1:0123456789abcdef0123456789abcdef-relay"
	otherKey = "other-1:fedcba9876543210fedcba9876543210-other"
)

func signer(t testing.TB, key string) *signing.Signer {
	t.Helper()
	k, err := signing.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// relayRecord is an event record as the relay writes it (JSON when asJSON), signed with s
// unless s is nil.
func relayRecord(t testing.TB, stream string, version int64, asJSON bool, s *signing.Signer) (kafka.Message, uuid.UUID) {
	t.Helper()
	e := events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: stream, Version: version, GlobalPosition: 1,
		Type: "UserDeactivated", Data: json.RawMessage(`{"reason":"test"}`), RecordedAt: time.Now().UTC(),
	}
	encode, ct := domain.Catalog().Encode, schema.ContentTypeAvro
	if asJSON {
		encode, ct = domain.Catalog().EncodeJSON, schema.ContentTypeJSON
	}
	value, fp, err := encode(e)
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message{Key: []byte(stream), Value: value, Time: e.RecordedAt, Headers: []kafka.Header{
		{Key: kafkawire.HeaderEventID, Value: []byte(e.EventID.String())},
		{Key: kafkawire.HeaderEventType, Value: []byte(e.Type)},
		{Key: kafkawire.HeaderStreamVersion, Value: strconv.AppendInt(nil, version, 10)},
		{Key: kafkawire.HeaderContentType, Value: []byte(ct)},
		{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
	}}
	if s != nil {
		s.Sign(&m)
	}
	return m, e.EventID
}

func write(t testing.TB, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// console is m as a record for Kafka's console producer.
func console(m kafka.Message) testenv.ConsoleRecord {
	r := testenv.ConsoleRecord{Key: string(m.Key), Value: string(m.Value)}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, [2]string{h.Key, string(h.Value)})
	}
	return r
}

// idRecorder remembers the event ids it handled.
type idRecorder struct {
	mu  sync.Mutex
	ids map[uuid.UUID]int
}

func (r *idRecorder) Handle(_ context.Context, m *consume.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[m.Event.EventID]++
	return nil
}

func (r *idRecorder) count(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id]
}

// Records that anyone with access to the brokers can write with Kafka's own console
// producer, keyed by a real stream: a well-formed event without a signature, one signed with
// a key the consumer does not accept, a copy of a genuine record with its value changed, and
// a value that is no event at all. Each goes to the dead-letter topic with its reason and is
// counted; none reaches the handler or blocks the stream, whose next genuine event follows.
func TestConsumer_QuarantinesRecordsTheRelayDidNotPublish(t *testing.T) {
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	relay := signer(t, relayKey)
	const stream = "user-q-1"
	first, firstID := relayRecord(t, stream, 0, false, relay)
	write(t, topic, first)

	unsigned, unsignedID := relayRecord(t, stream, 1, true, nil)
	otherSigned, otherID := relayRecord(t, stream, 1, true, signer(t, otherKey))
	tampered, tamperedID := relayRecord(t, stream, 1, true, relay)
	tampered.Value = []byte(strings.Replace(string(tampered.Value), `"reason":"test"`, `"reason":"forged"`, 1))
	garbage := testenv.ConsoleRecord{Key: stream, Value: "not avro", Headers: [][2]string{
		{kafkawire.HeaderContentType, schema.ContentTypeAvro}, {kafkawire.HeaderEventType, "UserDeactivated"}}}
	testenv.ConsoleProduce(t, topic, console(unsigned), console(otherSigned), console(tampered), garbage)

	next, nextID := relayRecord(t, stream, 1, false, relay)
	write(t, topic, next)

	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Decode = consume.NewDecoder(consume.DecoderConfig{Catalog: domain.Catalog(), Verifier: verifier(t, relayKey)})
	cfg.Blocks = consume.MemoryBlocks()
	reg := prometheus.NewPedanticRegistry()
	cfg.Metrics = consume.NewMetrics(reg)
	h := &idRecorder{ids: map[uuid.UUID]int{}}
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the commit to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r.halt(t)

	if h.count(firstID) != 1 || h.count(nextID) != 1 {
		t.Errorf("the genuine events were handled %d and %d times, want once each", h.count(firstID), h.count(nextID))
	}
	for name, id := range map[string]uuid.UUID{"unsigned": unsignedID, "other key": otherID, "tampered": tamperedID} {
		if n := h.count(id); n != 0 {
			t.Errorf("the %s record was handled %d times", name, n)
		}
	}
	letters := dead(t, dlq, 1)
	if len(letters) != 4 {
		t.Fatalf("%d dead letters, want the 4 records set aside (and nothing parked)", len(letters))
	}
	for i, want := range []string{"no signature", "not accepted", "bad signature", "no signature"} {
		if e := header(letters[i], kafkawire.HeaderError); !strings.HasPrefix(e, "quarantined: ") || !strings.Contains(e, want) {
			t.Errorf("dead letter %d: error %q, want a quarantine because of %q", i, e, want)
		}
		if q := header(letters[i], kafkawire.HeaderQuarantined); q != consume.QuarantineSignature {
			t.Errorf("dead letter %d: %s header %q, want %q", i, kafkawire.HeaderQuarantined, q, consume.QuarantineSignature)
		}
	}
	if string(letters[3].Value) != "not avro" || string(letters[0].Key) != stream {
		t.Errorf("the dead letters do not carry the records as they were")
	}
	if blocked, err := cfg.Blocks.Load(context.Background(), group); err != nil || len(blocked) != 0 {
		t.Errorf("blocked streams %v (%v), want none", blocked, err)
	}
	if got := quarantined(t, reg); got[consume.QuarantineSignature] != 4 || len(got) != 1 {
		t.Errorf("annals_consumer_quarantined_total by reason = %v, want 4 for signature", got)
	}
}

// A consumer that accepts unsigned records (while a deployment turns signing on) takes the
// unsigned ones it can decode, still refuses a bad signature, and sets aside an unsigned
// record it cannot decode instead of blocking the stream with it.
func TestConsumer_AcceptUnsigned(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	const stream = "user-q-2"
	old, oldID := relayRecord(t, stream, 0, false, nil)
	forged, forgedID := relayRecord(t, stream, 1, false, signer(t, otherKey))
	garbage := kafka.Message{Key: []byte(stream), Value: []byte("not avro")}
	next, nextID := relayRecord(t, stream, 1, false, signer(t, relayKey))
	write(t, topic, old, forged, garbage, next)

	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Decode = consume.NewDecoder(consume.DecoderConfig{Catalog: domain.Catalog(), Verifier: verifier(t, relayKey), AcceptUnsigned: true})
	reg := prometheus.NewPedanticRegistry()
	cfg.Metrics = consume.NewMetrics(reg)
	h := &idRecorder{ids: map[uuid.UUID]int{}}
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the commit to reach the end", func() bool { return caughtUp(t, group, topic, 1) })
	r.halt(t)
	if h.count(oldID) != 1 || h.count(nextID) != 1 || h.count(forgedID) != 0 {
		t.Errorf("handled unsigned %d, forged %d, signed %d times; want 1, 0, 1", h.count(oldID), h.count(forgedID), h.count(nextID))
	}
	if got := quarantined(t, reg); got[consume.QuarantineSignature] != 1 || got[consume.QuarantineUndecodable] != 1 {
		t.Errorf("annals_consumer_quarantined_total by reason = %v, want 1 signature, 1 undecodable", got)
	}
}

func verifier(t testing.TB, keys ...string) *signing.Verifier {
	t.Helper()
	var ks []signing.Key
	for _, s := range keys {
		k, err := signing.ParseKey(s)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	v, err := signing.NewVerifier(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// metricSum sums the series of a counter.
func metricSum(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// quarantined sums annals_consumer_quarantined_total by reason.
func quarantined(t testing.TB, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "annals_consumer_quarantined_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

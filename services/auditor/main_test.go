package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
)

// The auditor as a program, in process: migrations and grants, the consumer on the
// deployment's topics as the auditor's role, the API, the standard routes.
func TestAuditor(t *testing.T) {
	pool, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.SchemaURL(t, schemaName)
	vars := map[string]string{
		"DATABASE_URL":           dbURL,
		"KAFKA_BROKERS":          strings.Join(testenv.KafkaBrokers(t), ","),
		"KAFKA_TOPIC_PREFIX":     "test-" + testenv.UniqueName(t),
		"KAFKA_TOPIC_PARTITIONS": "3",
		"LOG_LEVEL":              "warn",
		"EVENT_SIGNING_KEY":      testenv.SigningKey,
		"API_KEYS":               testenv.APIKeys,
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Auditor, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	topics := wiring.Topics(m.Config)
	if err := relay.EnsureTopics(ctx, m.Config.Kafka.Brokers, topics, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		names := make([]string, len(topics))
		for i, tp := range topics {
			names[i] = tp.Name
		}
		client := &kafka.Client{Addr: kafka.TCP(m.Config.Kafka.Brokers...), Timeout: 30 * time.Second}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context, *app.Main) error{migrate, wire} {
		if err := step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	base := "http://" + m.Addr()

	// Events of both categories, published as the relay does.
	w := &kafka.Writer{Addr: kafka.TCP(m.Config.Kafka.Brokers...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 20 {
		category, typ, data := "user", "UserCreated", fmt.Sprintf(`{"user_id":"u%d","email":"u%d@example.com","name":"U"}`, i, i)
		if i%2 == 1 {
			category, typ, data = "order", "OrderShipped", `{}`
		}
		ev := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: fmt.Sprintf("%s-%d", category, i), Version: 0,
			GlobalPosition: int64(i + 1), Type: typ, Data: json.RawMessage(data), CorrelationID: "main-test",
			RecordedAt: time.Now().UTC().Truncate(time.Microsecond)}
		value, fp, err := domain.Catalog().Encode(ev)
		if err != nil {
			t.Fatalf("encode %s: %v", typ, err)
		}
		msgs = append(msgs, kafka.Message{Topic: m.Config.TopicName(category), Key: []byte(ev.StreamID), Value: value,
			Headers: []kafka.Header{
				{Key: "content-type", Value: []byte(schema.ContentTypeAvro)},
				{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
				{Key: "metadata", Value: []byte(`{"source":"main_test"}`)},
			}})
		testenv.Sign(&msgs[len(msgs)-1]) // as the relay does
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	var page struct {
		Entries []struct {
			Seq      int64             `json:"seq"`
			Topic    string            `json:"topic"`
			Metadata map[string]string `json:"metadata"`
		} `json:"entries"`
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		if code := getJSON(t, base+"/v1/audit?limit=100", &page); code != http.StatusOK {
			t.Fatalf("GET /v1/audit: %d", code)
		}
		if len(page.Entries) == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 events audited within 45s", len(page.Entries))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e := page.Entries[0]; e.Metadata["source"] != "main_test" || !strings.HasPrefix(e.Topic, vars["KAFKA_TOPIC_PREFIX"]+".") {
		t.Errorf("first entry: %+v", e)
	}
	var rep struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	if code := getJSON(t, base+"/v1/audit/verify", &rep); code != http.StatusOK || !rep.OK || rep.Checked != 20 {
		t.Errorf("verify: %d %+v", code, rep)
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if code := getJSON(t, base+"/openapi.json", &doc); code != http.StatusOK || doc.Paths["/v1/audit"] == nil || doc.Paths["/v1/audit/verify"] == nil {
		t.Errorf("openapi.json: %d, paths %v", code, doc.Paths)
	}
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if code := getJSON(t, base+"/readyz", &ready); code != http.StatusOK || ready.Checks["postgres_as_annals_auditor"] != "ok" {
		t.Errorf("readyz: %d %v", code, ready.Checks)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func getJSON(tb testing.TB, url string, out any) int {
	tb.Helper()
	resp, err := testenv.Client.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

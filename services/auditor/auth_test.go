package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
	"github.com/annals-dev/annals/services/auditor/api"
)

// ensureTopics creates the deployment's topics for m's configuration and deletes them when
// the test ends.
func ensureTopics(t *testing.T, m *app.Main) {
	t.Helper()
	topics := wiring.Topics(m.Config)
	if err := relay.EnsureTopics(context.Background(), m.Config.Kafka.Brokers, topics, io.Discard); err != nil {
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
}

// The audit log refuses bad credentials and only audit:read reaches it; it keeps the actor of
// each event, as the writer's relay publishes it in the metadata header, and shows it; the
// emails and names in the entries' data are redacted without personal-data. /openapi.json
// declares the scope the routes need.
func TestAuditor_AuthAndActor(t *testing.T) {
	is := authtest.NewIssuer(t)
	prefix := "test-" + testenv.UniqueName(t)
	topicsFirst := func(ctx context.Context, m *app.Main) error { ensureTopics(t, m); return nil }
	base, m := is.StartService(t, app.Auditor, map[string]string{"KAFKA_TOPIC_PREFIX": prefix, "KAFKA_TOPIC_PARTITIONS": "1"},
		topicsFirst, migrate, wire)
	routes := map[string]authtest.Route{
		"GET /v1/audit":        authtest.Req(auth.ScopeAuditRead, "GET", "/v1/audit", ""),
		"GET /v1/audit/verify": authtest.Req(auth.ScopeAuditRead, "GET", "/v1/audit/verify", ""),
	}
	is.Check(t, base, api.Policy(), routes, nil)
	t.Run("OpenAPI", func(t *testing.T) { authtest.CheckOpenAPI(t, base, api.Policy(), routes) })

	actor := map[string]string{auth.MetaActor: "alice", auth.MetaActorKind: auth.KindToken, auth.MetaActorIssuer: is.URL}
	md, _ := json.Marshal(actor)
	ev := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: "user-" + uuid.NewString(), Type: domain.EventUserCreated,
		Data: json.RawMessage(`{"user_id":"u1","email":"ada@example.com","name":"Ada"}`), Metadata: actor,
		GlobalPosition: 1, RecordedAt: time.Now().UTC().Truncate(time.Microsecond)}
	value, fp, err := domain.Catalog().Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := kafka.Message{Topic: m.Config.TopicName("user"), Key: []byte(ev.StreamID), Value: value, Headers: []kafka.Header{
		{Key: "content-type", Value: []byte(schema.ContentTypeAvro)},
		{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
		{Key: "metadata", Value: md},
	}}
	testenv.Sign(&msg)
	w := &kafka.Writer{Addr: kafka.TCP(m.Config.Kafka.Brokers...), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msg); err != nil {
		t.Fatal(err)
	}

	type page struct {
		Entries []struct {
			Data     map[string]any    `json:"data"`
			Metadata map[string]string `json:"metadata"`
		} `json:"entries"`
	}
	read := func(key string) page {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/v1/audit", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/audit: %d %v", resp.StatusCode, err)
		}
		return p
	}
	deadline := time.Now().Add(45 * time.Second)
	var p page
	for p = read(is.Key(auth.ScopeAuditRead)); len(p.Entries) == 0; p = read(is.Key(auth.ScopeAuditRead)) {
		if time.Now().After(deadline) {
			t.Fatal("the event was not audited within 45 s")
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	e := p.Entries[0]
	if !maps.Equal(e.Metadata, actor) {
		t.Errorf("audit entry metadata %v, want the actor %v", e.Metadata, actor)
	}
	if e.Data["email"] != auth.Redacted || e.Data["name"] != auth.Redacted || e.Data["user_id"] != "u1" {
		t.Errorf("without personal-data the entry's data is %v", e.Data)
	}
	if d := read(testenv.APIKey).Entries[0].Data; d["email"] != "ada@example.com" || d["name"] != "Ada" {
		t.Errorf("with personal-data the entry's data is %v", d)
	}
}

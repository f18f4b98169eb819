package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/services/writer/api"
)

// startWriter runs the writer as a program, in process, on real PostgreSQL and Kafka, with
// the issuer's keys and tokens accepted, and topics of its own. It returns its base URL and its
// configuration.
func startWriter(t *testing.T, is *authtest.Issuer) (string, *app.Main) {
	t.Helper()
	vars := map[string]string{"KAFKA_TOPIC_PREFIX": "test-" + testenv.UniqueName(t), "MIGRATE_ON_START": "true"}
	return is.StartService(t, app.Writer, vars, ownTopics(t), migrateOnStart, wire)
}

// ownTopics is a start-up step that creates the writer's topics, deleted when the test ends.
func ownTopics(t *testing.T) func(context.Context, *app.Main) error {
	return func(ctx context.Context, m *app.Main) error {
		topics := wiring.Topics(m.Config)
		if err := relay.EnsureTopics(ctx, m.Config.Kafka.Brokers, topics, io.Discard); err != nil {
			return err
		}
		t.Cleanup(func() {
			names := make([]string, len(topics))
			for i, tp := range topics {
				names[i] = tp.Name
			}
			client := &kafka.Client{Addr: kafka.TCP(m.Config.Kafka.Brokers...), Timeout: 30 * time.Second}
			client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
		})
		return nil
	}
}

const someID = "0190a4b2-7f3c-7a00-8000-000000000001"

// writerRoutes is a request for every route of the writer's policy.
var writerRoutes = map[string]authtest.Route{
	"POST /v1/users":                         authtest.Req(auth.ScopeCommands, "POST", "/v1/users", `{"email":"matrix@example.com","name":"Matrix"}`),
	"PATCH /v1/users/{id}":                   authtest.Req(auth.ScopeCommands, "PATCH", "/v1/users/"+someID, `{"name":"New"}`),
	"POST /v1/users/{id}/deactivate":         authtest.Req(auth.ScopeCommands, "POST", "/v1/users/"+someID+"/deactivate", `{"reason":"test"}`),
	"DELETE /v1/users/{id}/personal-data":    authtest.Req(auth.ScopeUsersErase, "DELETE", "/v1/users/"+someID+"/personal-data", ""),
	"POST /v1/orders":                        authtest.Req(auth.ScopeCommands, "POST", "/v1/orders", `{"user_id":"`+someID+`"}`),
	"POST /v1/orders/{id}/items":             authtest.Req(auth.ScopeCommands, "POST", "/v1/orders/"+someID+"/items", `{"id":"i","name":"n","price_cents":1,"quantity":1}`),
	"DELETE /v1/orders/{id}/items/{item_id}": authtest.Req(auth.ScopeCommands, "DELETE", "/v1/orders/"+someID+"/items/i", ""),
	"POST /v1/orders/{id}/confirm":           authtest.Req(auth.ScopeCommands, "POST", "/v1/orders/"+someID+"/confirm", ""),
	"POST /v1/orders/{id}/cancel":            authtest.Req(auth.ScopeCommands, "POST", "/v1/orders/"+someID+"/cancel", `{"reason":"test"}`),
	"POST /v1/orders/{id}/ship":              authtest.Req(auth.ScopeCommands, "POST", "/v1/orders/"+someID+"/ship", ""),
	"GET /v1/users/{id}":                     authtest.Req(auth.ScopeEventsRead, "GET", "/v1/users/"+someID, ""),
	"GET /v1/orders/{id}":                    authtest.Req(auth.ScopeEventsRead, "GET", "/v1/orders/"+someID, ""),
	"GET /v1/streams/{stream_id}":            authtest.Req(auth.ScopeEventsRead, "GET", "/v1/streams/user-"+someID, ""),
	"GET /v1/streams/{stream_id}/events":     authtest.Req(auth.ScopeEventsRead, "GET", "/v1/streams/user-"+someID+"/events", ""),
	"GET /v1/events":                         authtest.Req(auth.ScopeEventsRead, "GET", "/v1/events", ""),
	"GET /v1/subscribe":                      authtest.Req(auth.ScopeEventsRead, "GET", "/v1/subscribe?wait=0", ""),
	"GET /v1/stats":                          authtest.Req(auth.ScopeEventsRead, "GET", "/v1/stats", ""),
	"GET /v1/schemas":                        authtest.Req(auth.ScopeEventsRead, "GET", "/v1/schemas", ""),
	"GET /v1/schemas/{fingerprint}":          authtest.Req(auth.ScopeEventsRead, "GET", "/v1/schemas/0000000000000000", ""),
}

// Every route of the writer refuses bad credentials without appending anything, and each
// scope reaches exactly its routes, as /openapi.json declares.
func TestWriter_AuthRoutes(t *testing.T) {
	is := authtest.NewIssuer(t)
	base, m := startWriter(t, is)
	rows := func() int64 {
		var n int64
		err := m.DB.QueryRow(context.Background(),
			`select (select count(*) from annals_events) + (select count(*) from annals_outbox) + (select count(*) from annals_streams)`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	is.Check(t, base, api.Policy(), writerRoutes, rows)
	t.Run("OpenAPI", func(t *testing.T) { authtest.CheckOpenAPI(t, base, api.Policy(), writerRoutes) })
}

type envelope struct {
	Type     string            `json:"type"`
	StreamID string            `json:"stream_id"`
	Data     map[string]any    `json:"data"`
	Metadata map[string]string `json:"metadata"`
}

// The actor of a command is on its events: in the store, in the Kafka record's metadata
// header; and reads without personal-data carry emails and names redacted.
func TestWriter_ActorAndRedaction(t *testing.T) {
	is := authtest.NewIssuer(t)
	base, m := startWriter(t, is)

	send := func(method, path, body, bearer string, out any) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var created struct {
		ID string `json:"id"`
	}
	if code := send("POST", "/v1/users", `{"email":"ada@example.com","name":"Ada"}`, testenv.APIKey, &created); code != http.StatusCreated {
		t.Fatalf("create with the API key: %d", code)
	}
	token := is.Token(t, is.Claims("alice", auth.ScopeCommands))
	if code := send("PATCH", "/v1/users/"+created.ID, `{"email":"ada@example.org"}`, token, nil); code != http.StatusOK {
		t.Fatalf("update with a token: %d", code)
	}
	want := []map[string]string{
		{auth.MetaActor: "test", auth.MetaActorKind: auth.KindAPIKey},
		{auth.MetaActor: "alice", auth.MetaActorKind: auth.KindToken, auth.MetaActorIssuer: is.URL},
	}

	// In the store.
	store := postgres.New(m.DB, postgres.Options{})
	evs, err := store.ReadStream(context.Background(), "user-"+created.ID, 0, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for i, ev := range evs {
		if !maps.Equal(ev.Metadata, want[i]) {
			t.Errorf("stored event %d (%s) metadata %v, want %v", i, ev.Type, ev.Metadata, want[i])
		}
	}

	// In the Kafka records the relay publishes.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []map[string]string
	for len(got) < 2 {
		msg, err := readFromAnyPartition(ctx, m, created.ID)
		if err != nil {
			t.Fatalf("reading the published records: %v (got %d)", err, len(got))
		}
		got = msg
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("record %d metadata header %v, want %v", i, got[i], want[i])
		}
	}

	// Redacted without personal-data, shown with it.
	var page struct {
		Events []envelope `json:"events"`
	}
	if code := send("GET", "/v1/streams/user-"+created.ID+"/events", "", is.Key(auth.ScopeEventsRead), &page); code != http.StatusOK || len(page.Events) != 2 {
		t.Fatalf("stream events: %d %d", code, len(page.Events))
	}
	if page.Events[0].Data["email"] != auth.Redacted || page.Events[0].Data["name"] != auth.Redacted || page.Events[1].Data["email"] != auth.Redacted {
		t.Errorf("without personal-data: %v, %v", page.Events[0].Data, page.Events[1].Data)
	}
	var all struct {
		Events []envelope `json:"events"`
	}
	send("GET", "/v1/events", "", is.Key(auth.ScopeEventsRead), &all)
	for _, ev := range all.Events {
		if ev.Data["email"] != nil && ev.Data["email"] != auth.Redacted {
			t.Errorf("GET /v1/events without personal-data shows %v", ev.Data)
		}
	}
	var stats struct {
		Recent []envelope `json:"recent_events"`
	}
	send("GET", "/v1/stats", "", is.Key(auth.ScopeEventsRead), &stats)
	for _, ev := range stats.Recent {
		if ev.Data["email"] != nil && ev.Data["email"] != auth.Redacted {
			t.Errorf("GET /v1/stats without personal-data shows %v", ev.Data)
		}
	}
	var user map[string]any
	send("GET", "/v1/users/"+created.ID, "", is.Key(auth.ScopeEventsRead), &user)
	if user["email"] != auth.Redacted || user["name"] != auth.Redacted {
		t.Errorf("GET /v1/users/{id} without personal-data: %v", user)
	}
	send("GET", "/v1/users/"+created.ID, "", testenv.APIKey, &user)
	if user["email"] != "ada@example.org" || user["name"] != "Ada" {
		t.Errorf("GET /v1/users/{id} with personal-data: %v", user)
	}
	send("GET", "/v1/streams/user-"+created.ID+"/events", "", testenv.APIKey, &page)
	if page.Events[0].Data["email"] != "ada@example.com" {
		t.Errorf("with personal-data: %v", page.Events[0].Data)
	}
}

// readFromAnyPartition reads the user topic from the start of every partition until it has
// the records of the stream of id, and returns their metadata headers in order.
func readFromAnyPartition(ctx context.Context, m *app.Main, id string) ([]map[string]string, error) {
	topic := m.Config.TopicName("user")
	conn, err := kafka.DialContext(ctx, "tcp", m.Config.Kafka.Brokers[0])
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, err
	}
	for {
		for _, p := range parts {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: m.Config.Kafka.Brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
			var out []map[string]string
			for {
				rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				msg, err := r.ReadMessage(rctx)
				cancel()
				if err != nil {
					break
				}
				if string(msg.Key) != "user-"+id {
					continue
				}
				for _, h := range msg.Headers {
					if h.Key == "metadata" {
						var md map[string]string
						if err := json.Unmarshal(h.Value, &md); err != nil {
							r.Close()
							return nil, err
						}
						out = append(out, md)
					}
				}
			}
			r.Close()
			if len(out) >= 2 {
				return out, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

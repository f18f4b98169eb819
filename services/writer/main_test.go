package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/testenv"
)

// The writer as a program, in process, with a broker address where no broker answers: its
// outbox keeps it accepting commands, so it is ready; the relay's health, reported beside
// readiness and on its own route, says it is not publishing.
func TestWriter_ReadyWithoutKafka(t *testing.T) {
	_, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schemaName)
	u.RawQuery = q.Encode()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port where nothing answers once closed
	if err != nil {
		t.Fatal(err)
	}
	noBroker := ln.Addr().String()
	ln.Close()
	vars := map[string]string{
		"DATABASE_URL":       u.String(),
		"KAFKA_BROKERS":      noBroker,
		"KAFKA_TOPIC_PREFIX": "test-" + testenv.UniqueName(t),
		"MIGRATE_ON_START":   "true",
		"LOG_LEVEL":          "error",
		"EVENT_SIGNING_KEY":  testenv.SigningKey,
		"API_KEYS":           testenv.APIKeys,
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Writer, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context, *app.Main) error{migrateOnStart, wire} {
		if err := step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	base := "http://" + m.Addr()
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := testenv.Client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, body
	}

	var code int
	var ready map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for code, ready = get("/readyz"); code != http.StatusOK; code, ready = get("/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("the writer never became ready without Kafka: %d %v", code, ready)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}

	resp, err := testenv.Client.Post(base+"/v1/users", "application/json", strings.NewReader(`{"email":"ada@example.com","name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/users without Kafka: %s, want 201 Created", resp.Status)
	}

	relay, ok := ready["relay"].(map[string]any)
	if !ok || relay["publishing"] != false || relay["error"] == "" {
		t.Errorf("/readyz reports the relay as %v; want it not publishing, with the reason", ready["relay"])
	}
	code, health := get("/healthz/relay")
	if code != http.StatusServiceUnavailable || health["publishing"] != false {
		t.Errorf("GET /healthz/relay = %d %v; want 503, not publishing", code, health)
	}
	t.Logf("relay health without Kafka: %v", health)
}

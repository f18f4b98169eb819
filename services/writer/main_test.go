package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
)

// The writer as a program, in process, with a broker address where no broker answers: its
// outbox keeps it accepting commands, so it is ready; the relay's health, reported beside
// readiness and on its own route, says it is not publishing.
func TestWriter_ReadyWithoutKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port where nothing answers once closed
	if err != nil {
		t.Fatal(err)
	}
	noBroker := ln.Addr().String()
	ln.Close()
	vars := map[string]string{
		"KAFKA_BROKERS":      noBroker,
		"KAFKA_TOPIC_PREFIX": "test-" + testenv.UniqueName(t),
		"MIGRATE_ON_START":   "true",
		"API_KEYS":           testenv.APIKeys,
	}
	base, _ := authtest.NewIssuer(t).StartService(t, app.Writer, vars, migrateOnStart, wire)
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

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

// With EVENT_SOURCING_ENABLED=false the writer refuses every command with 503
// event_sourcing_disabled and no Retry-After, appends nothing, keeps serving its reads, and
// its OpenAPI document says so for the commands.
func TestWriter_EventSourcingDisabled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noBroker := ln.Addr().String()
	ln.Close()
	vars := map[string]string{
		"EVENT_SOURCING_ENABLED": "false",
		"KAFKA_BROKERS":          noBroker,
		"KAFKA_TOPIC_PREFIX":     "test-" + testenv.UniqueName(t),
		"MIGRATE_ON_START":       "true",
		"API_KEYS":               testenv.APIKeys,
	}
	base, _ := authtest.NewIssuer(t).StartService(t, app.Writer, vars, migrateOnStart, wire)
	do := func(method, path, body string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := testenv.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, out
	}
	deadline := time.Now().Add(20 * time.Second)
	for resp, _ := do("GET", "/readyz", ""); resp.StatusCode != http.StatusOK; resp, _ = do("GET", "/readyz", "") {
		if time.Now().After(deadline) {
			t.Fatalf("the writer never became ready: %s", resp.Status)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"email":"ada@example.com","name":"Ada"}`},
		{"PATCH", "/v1/users/0190a4b2-7f3c-7a00-8000-000000000001", `{"name":"Ada"}`},
		{"POST", "/v1/orders/0190a4b2-7f3c-7a00-8000-000000000001/confirm", ""},
	} {
		resp, body := do(c.method, c.path, c.body)
		e, _ := body["error"].(map[string]any)
		if resp.StatusCode != http.StatusServiceUnavailable || e["code"] != "event_sourcing_disabled" || resp.Header.Get("Retry-After") != "" {
			t.Errorf("%s %s: %s %v (Retry-After %q); want 503 event_sourcing_disabled without Retry-After",
				c.method, c.path, resp.Status, body, resp.Header.Get("Retry-After"))
		}
	}
	resp, stats := do("GET", "/v1/stats", "")
	if resp.StatusCode != http.StatusOK || stats["total_events"] != float64(0) {
		t.Errorf("GET /v1/stats: %s %v; want 200 with no event appended", resp.Status, stats)
	}
	resp, doc := do("GET", "/openapi.json", "")
	post, _ := doc["paths"].(map[string]any)["/v1/users"].(map[string]any)["post"].(map[string]any)
	r503, _ := post["responses"].(map[string]any)["503"].(map[string]any)
	if resp.StatusCode != http.StatusOK || !strings.Contains(r503["description"].(string), "event_sourcing_disabled") {
		t.Errorf("the OpenAPI document's 503 of POST /v1/users is %v; want it to name event_sourcing_disabled", r503)
	}
}

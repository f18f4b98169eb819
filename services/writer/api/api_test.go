package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/writer/api"
)

func TestAPI_OpenAPI(t *testing.T) {
	e := newEnv(t)
	r := e.router
	b, err := json.Marshal(r.OpenAPI("annals-writer", "test"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Summary     string                    `json:"summary"`
			OperationID string                    `json:"operationId"`
			Responses   map[string]map[string]any `json:"responses"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			RequestBody map[string]any `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	ids := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if op.Summary == "" || len(op.Responses) < 2 || ids[op.OperationID] {
				t.Errorf("%s %s: summary %q, responses %v, operationId %q (duplicate: %v)", method, path, op.Summary, op.Responses, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = true
			for code, resp := range op.Responses {
				if resp["description"] == "" || resp["content"] == nil {
					t.Errorf("%s %s: response %s = %v", method, path, code, resp)
				}
			}
			if method != "get" && op.RequestBody == nil {
				t.Errorf("%s %s: no requestBody", method, path)
			}
			for _, seg := range strings.Split(path, "/") {
				if name, ok := strings.CutPrefix(seg, "{"); ok && !slices.ContainsFunc(op.Parameters, func(p struct {
					Name string `json:"name"`
					In   string `json:"in"`
				}) bool {
					return p.In == "path" && p.Name == strings.TrimSuffix(name, "}")
				}) {
					t.Errorf("%s %s: path parameter %s undocumented", method, path, name)
				}
			}
		}
	}
	slices.Sort(documented)
	if got, want := documented, r.Routes(); !slices.Equal(got, want) {
		t.Errorf("documented = %v\nserved = %v", got, want)
	}
	want := []string{
		"DELETE /v1/orders/{id}/items/{item_id}", "DELETE /v1/users/{id}/personal-data",
		"GET /v1/events", "GET /v1/orders/{id}", "GET /v1/schemas", "GET /v1/schemas/{fingerprint}", "GET /v1/stats",
		"GET /v1/streams/{stream_id}", "GET /v1/streams/{stream_id}/events", "GET /v1/subscribe", "GET /v1/users/{id}",
		"PATCH /v1/users/{id}",
		"POST /v1/orders", "POST /v1/orders/{id}/cancel", "POST /v1/orders/{id}/confirm",
		"POST /v1/orders/{id}/items", "POST /v1/orders/{id}/ship",
		"POST /v1/users", "POST /v1/users/{id}/deactivate",
	}
	if got := r.Routes(); !slices.Equal(got, want) {
		t.Errorf("routes = %v\nwant %v", got, want)
	}

	// Every route is served: it answers with something other than the router's own
	// "no route" 404 or 405 (a malformed id gives the handler's 400).
	for _, route := range r.Routes() {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{id}", "x", "{item_id}", "x", "{stream_id}", "x").Replace(path)
		if route == "GET /v1/subscribe" {
			path += "?wait=0" // a stream that ends at once
		}
		res := e.do(t, method, path, nil)
		if res.Status == http.StatusMethodNotAllowed || strings.Contains(string(res.Body), "no route") {
			t.Errorf("%s: %d %s", route, res.Status, res.Body)
		}
	}
}

func TestAPI_Unavailable(t *testing.T) {
	// A pool on a port where nothing listens: every request that needs the store gets 503.
	cfg, err := pgxpool.ParseConfig("postgres://annals@127.0.0.1:1/annals?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := httpx.NewRouter()
	api.New(postgres.New(pool, postgres.Options{}), api.Options{Logger: log}).Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL}
	id := uuid.NewString()
	for _, tc := range []struct {
		method, path string
		body         any
		header       []string
	}{
		{"POST", "/v1/users", map[string]any{"email": "secret@example.com", "name": "Secret Name"}, nil},
		{"POST", "/v1/users", map[string]any{"email": "secret@example.com", "name": "Secret Name"}, []string{"Idempotency-Key", "secret-key"}},
		{"PATCH", "/v1/users/" + id, map[string]any{"name": "A"}, nil},
		{"GET", "/v1/users/" + id, nil, nil},
		{"GET", "/v1/orders/" + id + "?version=1", nil, nil},
		{"GET", "/v1/streams/user-" + id, nil, nil},
		{"GET", "/v1/events", nil, nil},
		{"GET", "/v1/stats", nil, nil},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			e.do(t, tc.method, tc.path, tc.body, tc.header...).fail(t, http.StatusServiceUnavailable, "unavailable")
		})
	}
	t.Run("Logs", func(t *testing.T) {
		// Failures are logged with their route and correlation id, never with the body.
		out := logs.String()
		if !strings.Contains(out, `"msg":"request failed"`) || !strings.Contains(out, `"correlation_id"`) {
			t.Errorf("logs = %s", out)
		}
		for _, secret := range []string{"secret@example.com", "Secret Name", "secret-key"} {
			if strings.Contains(out, secret) {
				t.Errorf("logs contain %q: %s", secret, out)
			}
		}
	})
}

func TestStoreOptions(t *testing.T) {
	c := config.Default()
	if got := api.StoreOptions(c.Aggregates); got.DisableOptimisticConcurrency || got.MaxEventsPerStream != c.Aggregates.MaxEventsPerAggregate {
		t.Errorf("defaults: %+v", got)
	}
	c.Aggregates.OptimisticConcurrency = false
	c.Aggregates.MaxEventsPerAggregate = 7
	if got := api.StoreOptions(c.Aggregates); !got.DisableOptimisticConcurrency || got.MaxEventsPerStream != 7 || got.Notify || got.OnAppend != nil {
		t.Errorf("StoreOptions = %+v, want optimistic concurrency off and 7 events at most", got)
	}
}

func TestOptionsFrom(t *testing.T) {
	c := config.Default()
	c.EventSourcing.SnapshotFrequency = 25
	c.Aggregates.SnapshotEnabled = true
	if got := api.OptionsFrom(c, nil).SnapshotEvery; got != 25 {
		t.Errorf("SnapshotEvery = %d, want 25", got)
	}
	c.Aggregates.SnapshotEnabled = false
	if got := api.OptionsFrom(c, nil).SnapshotEvery; got != 0 {
		t.Errorf("SnapshotEvery = %d with snapshots disabled, want 0", got)
	}
}

func TestAPI_PruneSnapshots(t *testing.T) {
	e := newEnv(t, func(c *setup) { c.api.SnapshotEvery = 1 })
	id := e.createUser(t)
	for _, n := range []string{"B", "C"} {
		e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": n}).ok(t, http.StatusOK)
	}
	count := func() int {
		var n int
		if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_snapshots`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count(); got < 2 {
		t.Fatalf("snapshots = %d, want at least 2 to prune", got)
	}
	if _, err := e.pool.Exec(context.Background(), `update annals_snapshots set created_at = created_at - interval '2 days'`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.api.PruneSnapshots(ctx, time.Hour, 24*time.Hour)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("snapshots = %d after 10s, want only the newest", count())
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("PruneSnapshots did not return after its context ended")
	}
	if m := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK); m["name"] != "C" {
		t.Errorf("user after pruning = %v", m)
	}
}

func TestStoreOptions_MaxEventBytes(t *testing.T) {
	c := config.Default()
	if got := api.StoreOptions(c.Aggregates).MaxEventBytes; got != 983040 {
		t.Errorf("default MaxEventBytes = %d, want 983040 (MAX_EVENT_BYTES)", got)
	}
	c.Aggregates.MaxEventBytes = 1000
	if got := api.StoreOptions(c.Aggregates).MaxEventBytes; got != 1000 {
		t.Errorf("MaxEventBytes = %d, want 1000", got)
	}
}

package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events/inmem"
	"github.com/annals-dev/annals/services/writer/api"
)

// The API runs on any store with idempotency keys, here the in-memory one: commands append,
// a retried command is answered from the key's record with the same bytes, and the schema
// catalog, which lives in PostgreSQL only, answers 503 without a database.
func TestAPI_OtherStore(t *testing.T) {
	a := api.New(inmem.New(inmem.Options{}), api.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	r := httpx.NewRouter()
	a.Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL}

	body := map[string]any{"email": "ada@example.com", "name": "Ada"}
	first := e.do(t, "POST", "/v1/users", body, "Idempotency-Key", "k-1")
	created := first.ok(t, http.StatusCreated)
	id, _ := created["id"].(string)
	if created["stream_id"] != "user-"+id || created["version"] != 0.0 || created["position"] != 1.0 {
		t.Fatalf("created %v", created)
	}
	again := e.do(t, "POST", "/v1/users", body, "Idempotency-Key", "k-1")
	if again.Status != http.StatusCreated || !bytes.Equal(again.Body, first.Body) || again.Header.Get(api.ReplayedHeader) != "true" {
		t.Errorf("retry: %d %s (replayed %q), want 201 %s", again.Status, again.Body, again.Header.Get(api.ReplayedHeader), first.Body)
	}
	e.do(t, "POST", "/v1/users", map[string]any{"email": "bob@example.com", "name": "Bob"}, "Idempotency-Key", "k-1").
		fail(t, http.StatusUnprocessableEntity, api.CodeIdempotencyKeyReused)
	e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "Ada L."}).ok(t, http.StatusOK)
	if got := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK); got["name"] != "Ada L." {
		t.Errorf("user %v", got)
	}
	e.do(t, "GET", "/v1/schemas", nil).fail(t, http.StatusServiceUnavailable, api.CodeUnavailable)
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/feed"
	"github.com/annals-dev/annals/services/writer/api"
)

// env is a writer API on its own schema of the real PostgreSQL, behind a real HTTP server.
type env struct {
	url    string
	pool   *pgxpool.Pool
	store  *postgres.Store
	api    *api.API
	router *httpx.Router
}

type setup struct {
	api   api.Options
	store postgres.Options
	feed  feed.Config // its Source is the store
	// onPool, when set, finishes the setup once the test's schema is there.
	onPool func(tb testing.TB, pool *pgxpool.Pool, s *setup)
	// pool, when onPool sets it, is the store's pool instead of the schema's own.
	pool *pgxpool.Pool
}

func newEnv(tb testing.TB, opts ...func(*setup)) *env {
	tb.Helper()
	pool, _ := testenv.SchemaPool(tb)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	c := setup{api: api.Options{Logger: slog.New(slog.NewTextHandler(tb.Output(), nil))}}
	for _, o := range opts {
		o(&c)
	}
	if c.onPool != nil {
		c.onPool(tb, pool, &c)
	}
	if c.pool != nil {
		pool = c.pool
	}
	var live *feed.Feed
	c.store.OnAppend = func() { live.Wake() }
	store := postgres.New(pool, c.store)
	c.feed.Source = store
	if c.feed.Poll == 0 {
		c.feed.Poll = 50 * time.Millisecond
	}
	live, err := feed.New(c.feed)
	if err != nil {
		tb.Fatal(err)
	}
	c.api.Feed = live
	a := api.New(store, c.api)
	r := httpx.NewRouter()
	a.Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	tb.Cleanup(srv.Close)
	tb.Cleanup(live.Close) // first: the streams end, and the server can close
	return &env{url: srv.URL, pool: pool, store: store, api: a, router: r}
}

// response is what a request got back.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// raw is a request body sent as it is.
type raw string

// do sends a request. body is nil (none), a raw string or a value to marshal; a body goes
// with Content-Type: application/json unless header pairs say otherwise.
func (e *env) do(tb testing.TB, method, path string, body any, header ...string) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case raw:
		rd = strings.NewReader(string(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(header); i += 2 {
		switch k, v := header[i], header[i+1]; {
		case v == "":
			req.Header.Del(k)
		case seen[k]:
			req.Header.Add(k, v)
		default:
			req.Header.Set(k, v)
			seen[k] = true
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// ok checks the status and decodes the body into a map.
func (r response) ok(tb testing.TB, status int) map[string]any {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		tb.Fatalf("body is not a JSON object: %q", r.Body)
	}
	return m
}

// into checks the status and decodes the body into v.
func (r response) into(tb testing.TB, status int, v any) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %q: %v", r.Body, err)
	}
}

// fail checks the status and error code and returns the error object.
func (r response) fail(tb testing.TB, status int, code string) map[string]any {
	tb.Helper()
	var body struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Error == nil {
		tb.Fatalf("status %d, body %q is not the error envelope", r.Status, r.Body)
	}
	if r.Status != status || body.Error["code"] != code {
		tb.Fatalf("got %d %v, want %d %s", r.Status, body.Error, status, code)
	}
	if msg, _ := body.Error["message"].(string); msg == "" {
		tb.Errorf("error without message: %v", body.Error)
	}
	return body.Error
}

// rule checks a 422 rule_violation of the given rule.
func (r response) rule(tb testing.TB, rule string) {
	tb.Helper()
	if got := r.fail(tb, http.StatusUnprocessableEntity, "rule_violation")["rule"]; got != rule {
		tb.Fatalf("rule = %v, want %s; body %s", got, rule, r.Body)
	}
}

// counts returns the number of rows in the events and outbox tables.
func (e *env) counts(tb testing.TB) [2]int64 {
	tb.Helper()
	var c [2]int64
	if err := e.pool.QueryRow(context.Background(),
		`select (select count(*) from annals_events), (select count(*) from annals_outbox)`).Scan(&c[0], &c[1]); err != nil {
		tb.Fatal(err)
	}
	return c
}

// unchanged runs fn and fails if it appended anything.
func (e *env) unchanged(tb testing.TB, fn func()) {
	tb.Helper()
	before := e.counts(tb)
	fn()
	if after := e.counts(tb); after != before {
		tb.Errorf("events/outbox rows went from %v to %v", before, after)
	}
}

// appended runs fn and checks that it appended exactly n events (and n outbox rows).
func (e *env) appended(tb testing.TB, n int64, fn func()) {
	tb.Helper()
	before := e.counts(tb)
	fn()
	after := e.counts(tb)
	if got := after[0] - before[0]; got != n || after[1]-before[1] != n {
		tb.Errorf("appended %d events and %d outbox rows, want %d", got, after[1]-before[1], n)
	}
}

// createUser creates an active user and returns its id.
func (e *env) createUser(tb testing.TB) string {
	tb.Helper()
	m := e.do(tb, "POST", "/v1/users", map[string]any{"email": "ada@example.com", "name": "Ada"}).ok(tb, http.StatusCreated)
	return m["id"].(string)
}

type item struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

var (
	book = item{ID: "book", Name: "A book", PriceCents: 1999, Quantity: 2}
	pen  = item{ID: "pen", Name: "A pen", PriceCents: 150, Quantity: 10}
)

// createOrder places an order for a new user and returns its id.
func (e *env) createOrder(tb testing.TB, items ...item) string {
	tb.Helper()
	if items == nil {
		items = []item{}
	}
	m := e.do(tb, "POST", "/v1/orders", map[string]any{"user_id": e.createUser(tb), "items": items}).ok(tb, http.StatusCreated)
	return m["id"].(string)
}

func etagOf(v int) string { return `"` + strconv.Itoa(v) + `"` }

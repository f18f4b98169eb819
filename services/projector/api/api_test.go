package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/projector/api"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// env is the query API on read models of a schema of their own, behind a real HTTP server.
type env struct {
	url    string
	pool   *pgxpool.Pool
	proj   *readmodel.Projection
	router *httpx.Router
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	pool, _ := testenv.SchemaPool(tb)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatal(err)
	}
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		tb.Fatal(err)
	}
	p := readmodel.New(pool, readmodel.Options{})
	r := httpx.NewRouter()
	api.New(p, api.Options{}).Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	tb.Cleanup(srv.Close)
	return &env{url: srv.URL, pool: pool, proj: p, router: r}
}

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// apply applies an event with the given data to the read models.
func (e *env) apply(tb testing.TB, streamID string, version int64, typ string, data any) {
	tb.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		tb.Fatal(err)
	}
	ev := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: streamID, Category: events.Category(streamID),
		Version: version, Type: typ, Data: raw, RecordedAt: at.Add(time.Duration(version) * time.Second)}
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := e.proj.Apply(ctx, tx, ev); err != nil {
		tb.Fatalf("apply %s %s@%d: %v", typ, streamID, version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) user(tb testing.TB, status domain.UserStatus) uuid.UUID {
	tb.Helper()
	id := uuid.Must(uuid.NewV7())
	s := "user-" + id.String()
	e.apply(tb, s, 0, domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "u@example.com", Name: "U"})
	if status == domain.UserStatusDeactivated {
		e.apply(tb, s, 1, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "gone"})
	}
	return id
}

// order creates an order of user with one line of price cents and applies the given events.
func (e *env) order(tb testing.TB, user uuid.UUID, price int64, then ...string) uuid.UUID {
	tb.Helper()
	id := uuid.Must(uuid.NewV7())
	s := "order-" + id.String()
	e.apply(tb, s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(),
		Items: []domain.Item{{ID: "x", Name: "X", PriceCents: price, Quantity: 1}}, TotalCents: price})
	for i, typ := range then {
		var data any = struct{}{}
		switch typ {
		case domain.EventOrderConfirmed:
			data = domain.OrderConfirmed{TotalCents: price}
		case domain.EventOrderCancelled:
			data = domain.OrderCancelled{Reason: "no"}
		}
		e.apply(tb, s, int64(i+1), typ, data)
	}
	return id
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (e *env) get(tb testing.TB, path string) response {
	tb.Helper()
	r, err := e.fetch(path)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// fetch is get for goroutines: it returns the error instead of failing the test.
func (e *env) fetch(path string) (response, error) {
	res, err := http.Get(e.url + path)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// background runs a request in a goroutine; wait returns its response.
func (e *env) background(path string) (wait func(testing.TB) response) {
	type result struct {
		r   response
		err error
	}
	c := make(chan result, 1)
	go func() {
		r, err := e.fetch(path)
		c <- result{r, err}
	}()
	return func(tb testing.TB) response {
		tb.Helper()
		res := <-c
		if res.err != nil {
			tb.Fatalf("GET %s: %v", path, res.err)
		}
		return res.r
	}
}

func (r response) into(tb testing.TB, status int, v any) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
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
	return body.Error
}

func TestGetUser(t *testing.T) {
	e := newEnv(t)
	id := e.user(t, domain.UserStatusDeactivated)

	t.Run("OK", func(t *testing.T) {
		res := e.get(t, "/v1/users/"+id.String())
		var u map[string]any
		res.into(t, http.StatusOK, &u)
		if res.Header.Get("ETag") != `"1"` {
			t.Errorf("ETag %q, want \"1\"", res.Header.Get("ETag"))
		}
		want := map[string]any{"id": id.String(), "stream_id": "user-" + id.String(), "version": 1.0, "email": "u@example.com",
			"name": "U", "status": "deactivated", "deactivation_reason": "gone", "created_at": "2026-03-01T12:00:00Z",
			"updated_at": "2026-03-01T12:00:01Z", "deactivated_at": "2026-03-01T12:00:01Z"}
		if got, w := mustJSON(u), mustJSON(want); got != w {
			t.Errorf("\n got %s\nwant %s", got, w)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		e.get(t, "/v1/users/"+uuid.Must(uuid.NewV7()).String()).fail(t, http.StatusNotFound, api.CodeNotFound)
	})
	for _, tc := range []struct{ name, path, field string }{
		{"BadID", "/v1/users/42", "id"},
		{"NilID", "/v1/users/00000000-0000-0000-0000-000000000000", "id"},
		{"UnknownParameter", "/v1/users/" + id.String() + "?version=1", "version"},
		{"BadMinVersion", "/v1/users/" + id.String() + "?min_version=-1", "min_version"},
		{"RepeatedMinVersion", "/v1/users/" + id.String() + "?min_version=1&min_version=2", "min_version"},
		{"BadWait", "/v1/users/" + id.String() + "?min_version=1&wait=soon", "wait"},
		{"NegativeWait", "/v1/users/" + id.String() + "?wait=-1s", "wait"},
		{"WaitTooLong", "/v1/users/" + id.String() + "?wait=31s", "wait"},
		{"WaitInMinutes", "/v1/users/" + id.String() + "?wait=0.1m", "wait"},
		{"WaitTooPrecise", "/v1/users/" + id.String() + "?wait=1.0001s", "wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f := e.get(t, tc.path).fail(t, http.StatusBadRequest, api.CodeInvalidRequest); f["field"] != tc.field {
				t.Errorf("field %v, want %s", f["field"], tc.field)
			}
		})
	}
}

func TestReadYourWrites(t *testing.T) {
	e := newEnv(t)
	user := e.user(t, domain.UserStatusActive)
	order := e.order(t, user, 500)
	path := "/v1/orders/" + order.String()

	t.Run("AlreadyThere", func(t *testing.T) {
		var o readmodel.Order
		e.get(t, path+"?min_version=0").into(t, http.StatusOK, &o)
		if o.Version != 0 || o.TotalCents != 500 || o.ItemCount != 1 {
			t.Errorf("got %+v", o)
		}
	})
	t.Run("WaitsForTheVersion", func(t *testing.T) {
		wait := e.background(path + "?min_version=1&wait=20s")
		e.apply(t, "order-"+order.String(), 1, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 500})
		var o readmodel.Order
		res := wait(t)
		res.into(t, http.StatusOK, &o)
		if o.Version != 1 || o.Status != domain.OrderStatusConfirmed || res.Header.Get("ETag") != `"1"` {
			t.Errorf("got %+v, ETag %s; want version 1, confirmed", o, res.Header.Get("ETag"))
		}
	})
	t.Run("WaitsForTheRow", func(t *testing.T) {
		id := uuid.Must(uuid.NewV7())
		wait := e.background("/v1/users/" + id.String() + "?wait=20s")
		e.apply(t, "user-"+id.String(), 0, domain.EventUserCreated, domain.UserCreated{Email: "late@example.com", Name: "Late"})
		var u readmodel.User
		wait(t).into(t, http.StatusOK, &u)
		if u.ID != id || u.Email != "late@example.com" {
			t.Errorf("got %+v", u)
		}
	})
	t.Run("NotCaughtUp", func(t *testing.T) {
		f := e.get(t, path+"?min_version=7&wait=20ms").fail(t, http.StatusGatewayTimeout, api.CodeNotCaughtUp)
		if f["version"] != 1.0 || f["min_version"] != 7.0 || f["stream_id"] != "order-"+order.String() {
			t.Errorf("error %v; want version 1, min_version 7 and the stream", f)
		}
		e.get(t, path+"?min_version=2").fail(t, http.StatusGatewayTimeout, api.CodeNotCaughtUp)
	})
	t.Run("NotFoundAfterTheWait", func(t *testing.T) {
		e.get(t, "/v1/orders/"+uuid.Must(uuid.NewV7()).String()+"?min_version=0&wait=20ms").fail(t, http.StatusNotFound, api.CodeNotFound)
	})
}

func TestListUsers(t *testing.T) {
	e := newEnv(t)
	var active, all []uuid.UUID
	for i := range 17 {
		status := domain.UserStatusActive
		if i%4 == 0 {
			status = domain.UserStatusDeactivated
		}
		id := e.user(t, status)
		all = append(all, id)
		if status == domain.UserStatusActive {
			active = append(active, id)
		}
	}
	walk := func(t *testing.T, query string) []uuid.UUID {
		var out []uuid.UUID
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var page struct {
				Users      []readmodel.User `json:"users"`
				NextCursor string           `json:"next_cursor"`
			}
			e.get(t, "/v1/users?"+q).into(t, http.StatusOK, &page)
			for _, u := range page.Users {
				out = append(out, u.ID)
			}
			if page.NextCursor == "" {
				return out
			}
			cursor = page.NextCursor
		}
	}
	if got := walk(t, "limit=4"); mustJSON(got) != mustJSON(all) {
		t.Errorf("walked %v, want every user once: %v", got, all)
	}
	if got := walk(t, "status=active&limit=3"); mustJSON(got) != mustJSON(active) {
		t.Errorf("walked %v, want every active user once: %v", got, active)
	}
	var page struct {
		Users      []readmodel.User `json:"users"`
		NextCursor *string          `json:"next_cursor"`
	}
	e.get(t, "/v1/users").into(t, http.StatusOK, &page)
	if len(page.Users) != 17 || page.NextCursor != nil {
		t.Errorf("default page: %d users, next_cursor %v; want all 17 and no cursor", len(page.Users), page.NextCursor)
	}

	for _, tc := range []struct{ name, query, field string }{
		{"BadStatus", "status=asleep", "status"},
		{"ZeroLimit", "limit=0", "limit"},
		{"LimitTooLarge", "limit=501", "limit"},
		{"LimitNotANumber", "limit=ten", "limit"},
		{"BadCursor", "cursor=!!!", "cursor"},
		{"ShortCursor", "cursor=AAAA", "cursor"},
		{"UnknownParameter", "offset=10", "offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f := e.get(t, "/v1/users?"+tc.query).fail(t, http.StatusBadRequest, api.CodeInvalidRequest); f["field"] != tc.field {
				t.Errorf("field %v, want %s", f["field"], tc.field)
			}
		})
	}
}

func TestListOrders(t *testing.T) {
	e := newEnv(t)
	a, b := e.user(t, domain.UserStatusActive), e.user(t, domain.UserStatusActive)
	var ofA, shipped []uuid.UUID
	for i := range 9 {
		user := a
		if i%3 == 2 {
			user = b
		}
		var then []string
		if i%2 == 0 {
			then = []string{domain.EventOrderConfirmed, domain.EventOrderShipped}
		}
		id := e.order(t, user, 100, then...)
		if user == a {
			ofA = append(ofA, id)
		}
		if len(then) > 0 {
			shipped = append(shipped, id)
		}
	}
	ids := func(path string) []uuid.UUID {
		var out []uuid.UUID
		for next := ""; ; {
			p := path
			if next != "" {
				p += "&cursor=" + next
			}
			var page struct {
				Orders     []readmodel.Order `json:"orders"`
				NextCursor string            `json:"next_cursor"`
			}
			e.get(t, p).into(t, http.StatusOK, &page)
			for _, o := range page.Orders {
				out = append(out, o.ID)
			}
			if next = page.NextCursor; next == "" {
				return out
			}
		}
	}
	if got := ids("/v1/users/" + a.String() + "/orders?limit=2"); mustJSON(got) != mustJSON(ofA) {
		t.Errorf("orders of a: %v, want %v", got, ofA)
	}
	if got := ids("/v1/orders?status=shipped&limit=2"); mustJSON(got) != mustJSON(shipped) {
		t.Errorf("shipped orders: %v, want %v", got, shipped)
	}
	e.get(t, "/v1/users/"+uuid.Must(uuid.NewV7()).String()+"/orders").fail(t, http.StatusNotFound, api.CodeNotFound)
	e.get(t, "/v1/orders?status=lost").fail(t, http.StatusBadRequest, api.CodeInvalidRequest)
	e.get(t, "/v1/users/nope/orders").fail(t, http.StatusBadRequest, api.CodeInvalidRequest)
}

func TestOrderStats(t *testing.T) {
	e := newEnv(t)
	var s readmodel.OrderStats
	e.get(t, "/v1/stats/orders").into(t, http.StatusOK, &s)
	if s != (readmodel.OrderStats{}) {
		t.Errorf("without orders: %+v", s)
	}
	u := e.user(t, domain.UserStatusActive)
	e.order(t, u, 1000)
	e.order(t, u, 2500, domain.EventOrderConfirmed)
	e.order(t, u, 4000, domain.EventOrderConfirmed, domain.EventOrderShipped)
	e.order(t, u, 8000, domain.EventOrderCancelled)
	res := e.get(t, "/v1/stats/orders")
	res.into(t, http.StatusOK, &s)
	want := readmodel.OrderStats{TotalOrders: 4, ConfirmedOrders: 2, CancelledOrders: 1, TotalRevenueCents: 6500, ConversionRate: 50}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if !strings.Contains(string(res.Body), `"total_revenue_cents":6500`) {
		t.Errorf("body %s", res.Body)
	}
	e.get(t, "/v1/stats/orders?since=yesterday").fail(t, http.StatusBadRequest, api.CodeInvalidRequest)
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t)
	want := []string{"GET /v1/orders", "GET /v1/orders/{id}", "GET /v1/stats/orders", "GET /v1/users", "GET /v1/users/{id}", "GET /v1/users/{id}/orders"}
	if got := e.router.Routes(); mustJSON(got) != mustJSON(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	doc := e.router.OpenAPI("annals-projector", "test")
	op := doc["paths"].(map[string]any)["/v1/users/{id}"].(map[string]any)["get"].(map[string]any)
	if _, ok := op["responses"].(map[string]any)["504"]; !ok {
		t.Errorf("GET /v1/users/{id} does not document 504: %v", op["responses"])
	}
	if _, err := json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/notifier/api"
	"github.com/annals-dev/annals/services/notifier/notify"
)

type page struct {
	Notifications []notify.Notification `json:"notifications"`
	NextCursor    string                `json:"next_cursor"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// env is the API on a sent log of a schema of its own, behind a real HTTP server, with rows
// for 7 emails to ada (two of them with her address in capitals) and 3 to bob.
type env struct {
	url    string
	router *httpx.Router
	ada    []uuid.UUID // in event id order
	bob    []uuid.UUID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := notify.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	log := notify.NewSentLog(pool)
	e := &env{}
	for i := range 10 {
		id := uuid.Must(uuid.NewV7())
		to, status := "ada@example.com", notify.StatusSent
		switch {
		case i%3 == 2:
			to = "bob@example.com"
			e.bob = append(e.bob, id)
		case i == 4 || i == 7:
			to = "ADA@example.com"
			e.ada = append(e.ada, id)
		default:
			e.ada = append(e.ada, id)
		}
		if i == 8 {
			status = notify.StatusSkipped
		}
		n := notify.Notification{EventID: id, EventType: "UserCreated", StreamID: "user-" + id.String(), Kind: "welcome",
			To: to, Subject: fmt.Sprintf("Welcome %d", i), MessageID: notify.MessageID(id, "annals.local"), Status: status}
		if status == notify.StatusSkipped {
			n.Reason = "user deactivated"
		}
		if err := log.Record(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	e.router = httpx.NewRouter()
	api.New(log, api.Options{}).Register(e.router)
	srv := httptest.NewServer(httpx.Middleware(e.router, nil, nil))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) get(t *testing.T, query string, v any) int {
	t.Helper()
	resp, err := http.Get(e.url + "/v1/notifications" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// all follows next_cursor from query to the last page and returns the event ids in order.
func (e *env) all(t *testing.T, query url.Values) []uuid.UUID {
	t.Helper()
	var out []uuid.UUID
	for pages := 0; ; pages++ {
		var p page
		if code := e.get(t, "?"+query.Encode(), &p); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		for _, n := range p.Notifications {
			out = append(out, n.EventID)
		}
		if p.NextCursor == "" {
			return out
		}
		if pages > 20 {
			t.Fatal("too many pages")
		}
		query.Set("cursor", p.NextCursor)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	t.Run("All", func(t *testing.T) {
		got := e.all(t, url.Values{"limit": {"3"}})
		want := slices.Concat(e.ada, e.bob)
		slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		if !slices.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})
	t.Run("To", func(t *testing.T) {
		if got := e.all(t, url.Values{"to": {"Ada@Example.com"}, "limit": {"2"}}); !slices.Equal(got, e.ada) {
			t.Errorf("got %v, want %v", got, e.ada)
		}
	})
	t.Run("EventID", func(t *testing.T) {
		var p page
		e.get(t, "?event_id="+e.bob[2].String(), &p)
		if len(p.Notifications) != 1 || p.NextCursor != "" {
			t.Fatalf("page %+v", p)
		}
		n := p.Notifications[0]
		if n.EventID != e.bob[2] || n.To != "bob@example.com" || n.Status != notify.StatusSkipped || n.Reason != "user deactivated" ||
			n.Kind != "welcome" || n.MessageID != e.bob[2].String()+"@annals.local" || n.SentAt.IsZero() {
			t.Errorf("notification %+v", n)
		}
	})
	t.Run("Nothing", func(t *testing.T) {
		var p page
		if code := e.get(t, "?to=nobody@example.com", &p); code != http.StatusOK || p.Notifications == nil || len(p.Notifications) != 0 {
			t.Errorf("status %d, page %+v, want an empty list", code, p)
		}
	})
	for _, tc := range []struct {
		query, field string
	}{
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?limit=x", "limit"},
		{"?event_id=42", "event_id"},
		{"?cursor=nope", "cursor"},
		{"?status=sent", "status"},
		{"?to=a@example.com&to=b@example.com", "to"},
		{"?to=null", "to"},
		{"?to=", "to"},
		{"?limit=", "limit"},
		{"?cursor=", "cursor"},
		{"?limit=0&cursor=a&cursor=b", "cursor"},
	} {
		t.Run("Invalid"+tc.query, func(t *testing.T) {
			var b errorBody
			if code := e.get(t, tc.query, &b); code != http.StatusBadRequest || b.Error.Code != api.CodeInvalidRequest || b.Error.Field != tc.field {
				t.Errorf("status %d, error %+v, want 400 on %s", code, b.Error, tc.field)
			}
		})
	}
}

func TestOpenAPI(t *testing.T) {
	r := httpx.NewRouter()
	api.New(nil, api.Options{}).Register(r)
	doc := r.OpenAPI("annals-notifier", "test")
	op, ok := doc["paths"].(map[string]any)["/v1/notifications"].(map[string]any)["get"].(map[string]any)
	if !ok {
		t.Fatalf("no GET /v1/notifications in %v", doc["paths"])
	}
	var names []string
	for _, p := range op["parameters"].([]any) {
		names = append(names, p.(map[string]any)["name"].(string))
	}
	if !slices.Equal(names, []string{"to", "event_id", "limit", "cursor"}) {
		t.Errorf("parameters %v", names)
	}
}

package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
)

// behindError is a service's own typed error, for the rules below.
type behindError struct{ at, want int64 }

func (e *behindError) Error() string { return fmt.Sprintf("at %d, not %d", e.at, e.want) }

var errGone = errors.New("gone for good")

// table is a service's table with its own rules: a typed error to 504 with fields, and a
// sentinel that wraps events.ErrNotFound but maps to 410.
func table(log *slog.Logger) httpx.Errors {
	return httpx.Errors{
		Dependency: "the widgets",
		Logger:     log,
		Rules: []httpx.Rule{
			httpx.As(func(e *behindError) httpx.Problem {
				return httpx.Problem{Status: http.StatusGatewayTimeout, Code: "behind", Message: e.Error(),
					Fields: map[string]any{"version": e.at}}
			}),
			httpx.Is(errGone, httpx.Problem{Status: http.StatusGone, Code: "gone"}),
		},
	}
}

func TestErrors_Problem(t *testing.T) {
	gone := fmt.Errorf("widget 7: %w: %w", errGone, events.ErrNotFound)
	for _, tc := range []struct {
		name string
		err  error
		want httpx.Problem
	}{
		{"InputError", fmt.Errorf("query: %w", httpx.Invalidf("limit", "too big")),
			httpx.Problem{Status: 400, Code: "invalid_request", Message: "limit: too big", Fields: map[string]any{"field": "limit"}}},
		{"InputErrorWithoutField", httpx.Invalidf("", "malformed JSON"),
			httpx.Problem{Status: 400, Code: "invalid_request", Message: "malformed JSON"}},
		{"As", fmt.Errorf("wait: %w", &behindError{3, 5}),
			httpx.Problem{Status: 504, Code: "behind", Message: "at 3, not 5", Fields: map[string]any{"version": int64(3)}}},
		{"IsBeforeTheSharedRules", gone, httpx.Problem{Status: 410, Code: "gone", Message: gone.Error()}},
		{"NotFound", fmt.Errorf("user 1: %w", events.ErrNotFound),
			httpx.Problem{Status: 404, Code: "not_found", Message: "user 1: not found"}},
		{"Invalid", fmt.Errorf("%w: stream id", events.ErrInvalid),
			httpx.Problem{Status: 400, Code: "invalid_request", Message: "invalid: stream id"}},
		{"Unavailable", fmt.Errorf("read: %w", &pgconn.PgError{Code: "57P01"}),
			httpx.Problem{Status: 503, Code: "unavailable", Message: "the widgets is unavailable; retry later"}},
		{"ClientWentAway", fmt.Errorf("read: %w", context.Canceled),
			httpx.Problem{Status: 503, Code: "unavailable", Message: "the widgets is unavailable; retry later"}},
		{"RateLimited", fmt.Errorf("create: %w", &httpx.RateLimitError{Limit: "commands", RetryAfter: 1500 * time.Millisecond}),
			httpx.Problem{Status: 429, Code: "rate_limited", Message: "too many commands from these credentials; retry after 2 s",
				Header: http.Header{"Retry-After": {"2"}}}},
		{"EventSourcingDisabled", fmt.Errorf("create: %w", httpx.ErrEventSourcingDisabled),
			httpx.Problem{Status: 503, Code: "event_sourcing_disabled", Message: httpx.ErrEventSourcingDisabled.Error()}},
		{"Internal", fmt.Errorf("read: %w", &pgconn.PgError{Code: "42P01", Message: "relation secret_table does not exist"}),
			httpx.Problem{Status: 500, Code: "internal", Message: "internal error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := table(nil).Problem(tc.err); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestErrors_Handler: a handler's error is written as the envelope, and only the failures on
// the server's side are logged, with the route and without the request's body.
func TestErrors_Handler(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string
		logged string // the log level, or "" for no line
	}{
		{"OK", nil, 200, `{"ok":true}`, ""},
		{"InputError", httpx.Invalidf("", "malformed JSON"), 400, `{"error":{"code":"invalid_request","message":"malformed JSON"}}`, ""},
		{"Behind", &behindError{1, 2}, 504, `{"error":{"code":"behind","message":"at 1, not 2","version":1}}`, ""},
		{"Internal", errors.New("boom"), 500, `{"error":{"code":"internal","message":"internal error"}}`, "ERROR"},
		{"Unavailable", &pgconn.PgError{Code: "08006"}, 503, `{"error":{"code":"unavailable","message":"the widgets is unavailable; retry later"}}`, "ERROR"},
		{"ClientWentAway", context.Canceled, 503, `{"error":{"code":"unavailable","message":"the widgets is unavailable; retry later"}}`, "DEBUG"},
		{"RateLimited", &httpx.RateLimitError{Limit: "widgets", RetryAfter: 10 * time.Millisecond}, 429,
			`{"error":{"code":"rate_limited","message":"too many widgets from these credentials; retry after 1 s"}}`, ""},
		{"EventSourcingDisabled", httpx.ErrEventSourcingDisabled, 503,
			`{"error":{"code":"event_sourcing_disabled","message":"event sourcing is disabled (EVENT_SOURCING_ENABLED=false): this deployment takes no commands; reads keep working"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			r := httpx.NewRouter()
			r.HandleFunc("POST", "/v1/widgets", httpx.Operation{Summary: "a widget"}, table(log).Handler(func(w http.ResponseWriter, r *http.Request) error {
				if tc.err == nil {
					httpx.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
				}
				return tc.err
			}))
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/widgets", strings.NewReader(`{"secret":"s3cret"}`)))
			if got := strings.TrimSpace(rec.Body.String()); rec.Code != tc.status || got != tc.body {
				t.Errorf("got %d %s, want %d %s", rec.Code, got, tc.status, tc.body)
			}
			if got, want := rec.Header().Get("Retry-After"), map[bool]string{true: "1"}[tc.status == 429]; got != want {
				t.Errorf("Retry-After %q, want %q", got, want)
			}
			if tc.logged == "" {
				if logs.Len() > 0 {
					t.Errorf("logged %s", logs.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if line["level"] != tc.logged || line["msg"] != "request failed" || line["route"] != "POST /v1/widgets" ||
				line["status"] != float64(tc.status) || strings.Contains(logs.String(), "s3cret") {
				t.Errorf("log line %s", logs.String())
			}
		})
	}
}

func TestErrorSchema(t *testing.T) {
	field := map[string]any{"type": "string"}
	got := httpx.ErrorSchema(map[string]any{"field": field})
	want := map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{
		"error": map[string]any{"type": "object", "required": []string{"code", "message"}, "properties": map[string]any{
			"code": httpx.StringSchema, "message": httpx.StringSchema, "field": field,
		}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// Retry-After is whole seconds, rounded up, and never 0: a client told to wait 0 s would
// come straight back.
func TestRateLimitError_RetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {-time.Second, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + time.Nanosecond, 2},
		{2500 * time.Millisecond, 3}, {time.Minute, 60},
	} {
		if got := (&httpx.RateLimitError{RetryAfter: tc.wait}).RetryAfterSeconds(); got != tc.want {
			t.Errorf("RetryAfter %s: %d s, want %d", tc.wait, got, tc.want)
		}
	}
}

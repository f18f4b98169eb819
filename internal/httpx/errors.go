package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Codes of the error envelope that any service may answer with. A service's own codes sit next
// to its own rules.
const (
	CodeInvalidRequest   = "invalid_request"    // 400, with field when one is named
	CodeUnauthorized     = "unauthorized"       // 401: no valid credentials
	CodeForbidden        = "forbidden"          // 403: credentials without the route's scope
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeRateLimited      = "rate_limited"       // 429, with Retry-After
	CodeUnavailable      = "unavailable"        // 503
	// CodeEventSourcingDisabled: 503 without Retry-After, the deployment takes no commands
	// (EVENT_SOURCING_ENABLED=false).
	CodeEventSourcingDisabled = "event_sourcing_disabled"
	CodeInternal              = "internal" // 500
)

// The refusals of authentication (internal/auth): errors that are ErrUnauthorized answer 401
// unauthorized, and ErrForbidden 403 forbidden, with the error's text as the message.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
)

// ErrEventSourcingDisabled refuses a command while event sourcing is turned off
// (EVENT_SOURCING_ENABLED=false): 503 event_sourcing_disabled, without Retry-After, since it
// lasts until an operator turns it on again. It is 503 and not 409 because the refusal is the
// server's state, not the resource's: the same request succeeds unchanged once the setting is
// back, and clients and proxies treat it as the server declining, not as a conflict the
// client could resolve. It is not logged as a failure.
var ErrEventSourcingDisabled = errors.New("event sourcing is disabled (EVENT_SOURCING_ENABLED=false): this deployment takes no commands; reads keep working")

// RateLimitError refuses a request whose caller is over a rate limit: 429 rate_limited, with
// a Retry-After header that says when the caller may try again.
type RateLimitError struct {
	// Limit names the limit, such as "commands".
	Limit string
	// RetryAfter is how long the caller must wait before its next request can pass.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return "too many " + e.Limit + " from these credentials; retry after " + strconv.Itoa(e.RetryAfterSeconds()) + " s"
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1: the value of the
// Retry-After header.
func (e *RateLimitError) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Problem is an error as the client sees it: the status, the envelope's code, message and
// extra members, and the headers that go with it.
type Problem struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]any
	Header  http.Header
}

// Rule maps the errors it knows to their Problem, and reports whether it knew err.
type Rule func(err error) (Problem, bool)

// Is is the Rule for the errors that are target (errors.Is): p, with the error's text as the
// message unless p has one.
func Is(target error, p Problem) Rule {
	return func(err error) (Problem, bool) {
		if !errors.Is(err, target) {
			return Problem{}, false
		}
		if p.Message == "" {
			p.Message = err.Error()
		}
		return p, true
	}
}

// As is the Rule for the errors that hold an E (errors.As): what problem makes of the first E
// in the chain.
func As[E error](problem func(E) Problem) Rule {
	return func(err error) (Problem, bool) {
		var e E
		if !errors.As(err, &e) {
			return Problem{}, false
		}
		return problem(e), true
	}
}

// Errors is a service's error table: the one place that turns an error into a response. A
// service gives only what is its own, its Rules and the name of what it serves; the rules every
// service shares surround them. In order:
//
//   - an *InputError: 400 invalid_request, with the field when it names one;
//   - Rules, in order;
//   - ErrUnauthorized: 401 unauthorized; ErrForbidden: 403 forbidden;
//   - a *RateLimitError: 429 rate_limited, with Retry-After;
//   - ErrEventSourcingDisabled: 503 event_sourcing_disabled, without Retry-After;
//   - events.ErrNotFound: 404 not_found;
//   - events.ErrInvalid: 400 invalid_request;
//   - a failure that may pass (postgres.Transient): 503 unavailable, "<Dependency> is
//     unavailable; retry later";
//   - anything else: 500 internal, "internal error", so that nothing of the server's insides
//     reaches the client.
type Errors struct {
	// Dependency names what a 503 is about: "the event store" ("the service" when empty).
	Dependency string
	// Rules map the service's own errors.
	Rules []Rule
	// Logger receives the failures on the server's side (slog.Default when nil).
	Logger *slog.Logger
}

// Problem returns the Problem that err maps to.
func (t Errors) Problem(err error) Problem {
	var in *InputError
	if errors.As(err, &in) {
		return Problem{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: in.Error(), Fields: FieldOf(in.Field)}
	}
	for _, rule := range t.Rules {
		if p, ok := rule(err); ok {
			return p
		}
	}
	var limited *RateLimitError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return Problem{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: err.Error()}
	case errors.Is(err, ErrForbidden):
		return Problem{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error()}
	case errors.As(err, &limited):
		return Problem{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: limited.Error(),
			Header: http.Header{"Retry-After": {strconv.Itoa(limited.RetryAfterSeconds())}}}
	case errors.Is(err, ErrEventSourcingDisabled):
		return Problem{Status: http.StatusServiceUnavailable, Code: CodeEventSourcingDisabled, Message: ErrEventSourcingDisabled.Error()}
	case errors.Is(err, events.ErrNotFound):
		return Problem{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, events.ErrInvalid):
		return Problem{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: err.Error()}
	case postgres.Transient(err):
		dep := t.Dependency
		if dep == "" {
			dep = "the service"
		}
		return Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: dep + " is unavailable; retry later"}
	}
	return Problem{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// Write answers with the envelope of err's Problem, and its headers. A failure on the server's side (a 5xx,
// but a 504, which is a wait the client asked for running out, and a 503 event_sourcing_disabled, which is
// the configuration) is logged with LogFailure.
func (t Errors) Write(w http.ResponseWriter, r *http.Request, err error) {
	p := t.Problem(err)
	if p.Status >= 500 && p.Status != http.StatusGatewayTimeout && p.Code != CodeEventSourcingDisabled {
		log := t.Logger
		if log == nil {
			log = slog.Default()
		}
		LogFailure(log, r, p.Status, err)
	}
	for k, v := range p.Header {
		w.Header()[k] = v
	}
	WriteErrorFields(w, p.Status, p.Code, p.Message, p.Fields)
}

// HandlerFunc is an HTTP handler that returns its error rather than writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler returns h as an http.HandlerFunc that writes h's error, if any, through the table.
// h must not have written a response when it returns an error.
func (t Errors) Handler(h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			t.Write(w, r, err)
		}
	}
}

// FieldOf is the extra members that name a malformed field: none when field is empty.
func FieldOf(field string) map[string]any {
	if field == "" {
		return nil
	}
	return map[string]any{"field": field}
}

// ErrorBody is the JSON error envelope of every service: {"error":{"code":..,"message":..}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody. Fields carries extra members such as expected and
// actual versions of a conflict.
type ErrorDetail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"-"`
}

// MarshalJSON flattens Fields next to code and message.
func (d ErrorDetail) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(d.Fields)+2)
	for k, v := range d.Fields {
		m[k] = v
	}
	m["code"] = d.Code
	m["message"] = d.Message
	return json.Marshal(m)
}

// WriteError writes the error envelope with the given status and code.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteErrorFields(w, status, code, message, nil)
}

// WriteErrorFields writes the error envelope with extra members.
func WriteErrorFields(w http.ResponseWriter, status int, code, message string, fields map[string]any) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message, Fields: fields}})
}

// LogFailure logs a request that failed on the server's side, with its method, route, status
// and correlation id (never its body): at error level, or debug when the client went away.
func LogFailure(log *slog.Logger, r *http.Request, status int, err error) {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug
	}
	log.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method), slog.String("route", r.Pattern),
		slog.Int("status", status), slog.String("correlation_id", CorrelationID(r)),
		slog.String("error", err.Error()))
}

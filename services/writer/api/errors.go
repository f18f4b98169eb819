package api

import (
	"errors"
	"net/http"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest       = httpx.CodeInvalidRequest // 400
	CodeNotFound             = httpx.CodeNotFound       // 404
	CodeVersionConflict      = "version_conflict"       // 409, with expected and actual
	CodeTooLarge             = "too_large"              // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeRuleViolation        = "rule_violation"         // 422, with rule
	CodeIdempotencyKeyReused = "idempotency_key_reused" // 422
	CodeUnavailable          = httpx.CodeUnavailable    // 503
	CodeInternal             = httpx.CodeInternal       // 500
)

// RuleStreamFull is the rule of a 422 for a stream at MAX_EVENTS_PER_AGGREGATE.
const RuleStreamFull = "stream_full"

// errKeyReused: an Idempotency-Key came back with another request.
var errKeyReused = errors.New("this Idempotency-Key was already used with a different request (method, path or body)")

// errNoCatalog: the API was built without the PostgreSQL database of the schema catalog.
var errNoCatalog = errors.New("the schema catalog is not reachable from this writer")

// errorRules are the writer's own entries of its error table (httpx.Errors), which adds the
// ones every service shares: malformed input 400, not found 404, unavailable 503, internal 500.
var errorRules = []httpx.Rule{
	httpx.As(func(ve *domain.ValidationError) httpx.Problem {
		return httpx.Problem{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: ve.Error(), Fields: httpx.FieldOf(ve.Field)}
	}),
	tooLarge,
	httpx.Is(errMediaType, httpx.Problem{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType}),
	httpx.As(func(rule *domain.RuleError) httpx.Problem {
		return httpx.Problem{Status: http.StatusUnprocessableEntity, Code: CodeRuleViolation, Message: rule.Message,
			Fields: map[string]any{"rule": rule.Rule}}
	}),
	httpx.Is(errNoCatalog, httpx.Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable}),
	httpx.Is(errKeyReused, httpx.Problem{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused}),
	httpx.As(func(vc *events.VersionConflictError) httpx.Problem {
		return httpx.Problem{Status: http.StatusConflict, Code: CodeVersionConflict, Message: vc.Error(),
			Fields: map[string]any{"stream_id": vc.StreamID, "expected": expectedJSON(vc.Expected), "actual": vc.Actual}}
	}),
	httpx.As(func(full *events.StreamFullError) httpx.Problem {
		return httpx.Problem{Status: http.StatusUnprocessableEntity, Code: CodeRuleViolation, Message: full.Error(),
			Fields: map[string]any{"rule": RuleStreamFull, "max_events": full.Max}}
	}),
	httpx.Is(events.ErrStreamFull, httpx.Problem{Status: http.StatusUnprocessableEntity, Code: CodeRuleViolation,
		Fields: map[string]any{"rule": RuleStreamFull}}),
}

// tooLarge is the rule of everything over a size limit (events.ErrTooLarge), 413 too_large: a
// request body over MaxBodyBytes, or an event over the store's MaxEventBytes (MAX_EVENT_BYTES),
// which names the limit as max_bytes.
func tooLarge(err error) (httpx.Problem, bool) {
	if !errors.Is(err, events.ErrTooLarge) {
		return httpx.Problem{}, false
	}
	p := httpx.Problem{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: err.Error()}
	var event *events.TooLargeError
	if errors.As(err, &event) {
		p.Message, p.Fields = event.Error(), map[string]any{"max_bytes": event.Max}
	}
	return p, true
}

// expectedJSON writes an expected version as the number the client sent or saw; -1 for a
// stream that should not exist yet.
func expectedJSON(e events.ExpectedVersion) any {
	if v, ok := e.Version(); ok {
		return v
	}
	if e.IsNoStream() {
		return int64(-1)
	}
	return e.String()
}

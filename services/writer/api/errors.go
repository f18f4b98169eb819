package api

import (
	"errors"
	"net/http"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest       = "invalid_request"        // 400
	CodeNotFound             = "not_found"              // 404
	CodeVersionConflict      = "version_conflict"       // 409, with expected and actual
	CodeTooLarge             = "too_large"              // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeRuleViolation        = "rule_violation"         // 422, with rule
	CodeIdempotencyKeyReused = "idempotency_key_reused" // 422
	CodeUnavailable          = "unavailable"            // 503
	CodeInternal             = "internal"               // 500
)

// RuleStreamFull is the rule of a 422 for a stream at MAX_EVENTS_PER_AGGREGATE.
const RuleStreamFull = "stream_full"

// errKeyReused: an Idempotency-Key came back with another request.
var errKeyReused = errors.New("this Idempotency-Key was already used with a different request (method, path or body)")

// problem is an error as the client sees it.
type problem struct {
	status  int
	code    string
	message string
	fields  map[string]any
}

// classify maps an error to its HTTP status, code, message and extra fields. It is the only
// place that does.
func classify(err error) problem {
	var (
		in   *httpx.InputError
		ve   *domain.ValidationError
		rule *domain.RuleError
		vc   *events.VersionConflictError
		full *events.StreamFullError
	)
	switch {
	case errors.As(err, &in):
		return problem{http.StatusBadRequest, CodeInvalidRequest, in.Error(), fieldOf(in.Field)}
	case errors.As(err, &ve):
		return problem{http.StatusBadRequest, CodeInvalidRequest, ve.Error(), fieldOf(ve.Field)}
	case errors.Is(err, errTooLarge):
		return problem{http.StatusRequestEntityTooLarge, CodeTooLarge, err.Error(), nil}
	case errors.Is(err, errMediaType):
		return problem{http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, err.Error(), nil}
	case errors.As(err, &rule):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, rule.Message, map[string]any{"rule": rule.Rule}}
	case errors.Is(err, errKeyReused):
		return problem{http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, err.Error(), nil}
	case errors.As(err, &vc):
		return problem{http.StatusConflict, CodeVersionConflict, vc.Error(),
			map[string]any{"stream_id": vc.StreamID, "expected": expectedJSON(vc.Expected), "actual": vc.Actual}}
	case errors.As(err, &full):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, full.Error(),
			map[string]any{"rule": RuleStreamFull, "max_events": full.Max}}
	case errors.Is(err, events.ErrStreamFull):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, err.Error(), map[string]any{"rule": RuleStreamFull}}
	case errors.Is(err, events.ErrNotFound):
		return problem{http.StatusNotFound, CodeNotFound, err.Error(), nil}
	case errors.Is(err, events.ErrInvalid):
		return problem{http.StatusBadRequest, CodeInvalidRequest, err.Error(), nil}
	case postgres.Transient(err):
		return problem{http.StatusServiceUnavailable, CodeUnavailable, "the event store is unavailable; retry later", nil}
	}
	return problem{http.StatusInternalServerError, CodeInternal, "internal error", nil}
}

func fieldOf(field string) map[string]any {
	if field == "" {
		return nil
	}
	return map[string]any{"field": field}
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

// writeError answers with the error envelope. Server-side failures are logged with the
// request's route and correlation id, never with its body.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 {
		httpx.LogFailure(a.log, r, p.status, err)
	}
	httpx.WriteErrorFields(w, p.status, p.code, p.message, p.fields)
}

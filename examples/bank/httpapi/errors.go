package httpapi

import (
	"errors"
	"net/http"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest  = "invalid_request"  // 400, with field
	CodeNotFound        = "not_found"        // 404
	CodeVersionConflict = "version_conflict" // 409
	CodeRuleViolation   = "rule_violation"   // 422, with rule
	CodeUnavailable     = "unavailable"      // 503
	CodeInternal        = "internal"         // 500
)

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
		ve        *bank.ValidationError
		overdraft *bank.OverdraftError
		rule      *bank.RuleError
		conflict  *events.VersionConflictError
	)
	switch {
	case errors.As(err, &ve):
		return problem{http.StatusBadRequest, CodeInvalidRequest, ve.Message, map[string]any{"field": ve.Field}}
	case errors.As(err, &overdraft):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, overdraft.Error(),
			map[string]any{"rule": bank.RuleOverdraftLimitExceeded, "available_cents": overdraft.AvailableCents()}}
	case errors.As(err, &rule):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, rule.Message, map[string]any{"rule": rule.Rule}}
	case errors.Is(err, events.ErrStreamFull):
		return problem{http.StatusUnprocessableEntity, CodeRuleViolation, err.Error(), map[string]any{"rule": "stream_full"}}
	case errors.As(err, &conflict):
		return problem{http.StatusConflict, CodeVersionConflict, "the account changed concurrently; retry", map[string]any{"actual": conflict.Actual}}
	case errors.Is(err, events.ErrNotFound):
		return problem{http.StatusNotFound, CodeNotFound, err.Error(), nil}
	case errors.Is(err, events.ErrInvalid):
		return problem{http.StatusBadRequest, CodeInvalidRequest, err.Error(), nil}
	case postgres.Transient(err):
		return problem{http.StatusServiceUnavailable, CodeUnavailable, "the database is unavailable; retry later", nil}
	}
	return problem{http.StatusInternalServerError, CodeInternal, "internal error", nil}
}

// fail answers with the error envelope. Server-side failures are logged, without the body.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 {
		a.log.ErrorContext(r.Context(), "bank: request failed", "method", r.Method, "path", r.URL.Path,
			"status", p.status, "correlation_id", w.Header().Get(CorrelationIDHeader), "error", err)
	}
	body := map[string]any{"code": p.code, "message": p.message}
	for k, v := range p.fields {
		body[k] = v
	}
	writeJSON(w, p.status, map[string]any{"error": body})
}

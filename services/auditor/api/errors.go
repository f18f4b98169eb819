package api

import (
	"errors"
	"net/http"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest = "invalid_request" // 400, with field
	CodeUnavailable    = "unavailable"     // 503
	CodeInternal       = "internal"        // 500
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
	var in *httpx.InputError
	switch {
	case errors.As(err, &in):
		return problem{http.StatusBadRequest, CodeInvalidRequest, in.Error(), map[string]any{"field": in.Field}}
	case postgres.Transient(err):
		return problem{http.StatusServiceUnavailable, CodeUnavailable, "the audit log is unavailable; retry later", nil}
	}
	return problem{http.StatusInternalServerError, CodeInternal, "internal error", nil}
}

// writeError answers with the error envelope. Server-side failures are logged with the
// request's route and correlation id.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 {
		httpx.LogFailure(a.lg, r, p.status, err)
	}
	httpx.WriteErrorFields(w, p.status, p.code, p.message, p.fields)
}

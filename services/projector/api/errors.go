package api

import (
	"errors"
	"net/http"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest = "invalid_request" // 400, with field
	CodeNotFound       = "not_found"       // 404
	CodeNotCaughtUp    = "not_caught_up"   // 504, with stream_id, version and min_version
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
	var (
		in *httpx.InputError
		nc *readmodel.NotCaughtUpError
	)
	switch {
	case errors.As(err, &in):
		return problem{http.StatusBadRequest, CodeInvalidRequest, in.Error(), map[string]any{"field": in.Field}}
	case errors.Is(err, events.ErrNotFound):
		return problem{http.StatusNotFound, CodeNotFound, err.Error(), nil}
	case errors.As(err, &nc):
		return problem{http.StatusGatewayTimeout, CodeNotCaughtUp, nc.Error(),
			map[string]any{"stream_id": nc.StreamID, "version": nc.Version, "min_version": nc.MinVersion}}
	case postgres.Transient(err):
		return problem{http.StatusServiceUnavailable, CodeUnavailable, "the read models are unavailable; retry later", nil}
	}
	return problem{http.StatusInternalServerError, CodeInternal, "internal error", nil}
}

// writeError answers with the error envelope. Server-side failures are logged with the
// request's route and correlation id.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 && p.status != http.StatusGatewayTimeout {
		httpx.LogFailure(a.log, r, p.status, err)
	}
	httpx.WriteErrorFields(w, p.status, p.code, p.message, p.fields)
}

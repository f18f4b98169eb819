package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/httpx"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest = "invalid_request" // 400, with field
	CodeUnavailable    = "unavailable"     // 503
	CodeInternal       = "internal"        // 500
)

// inputError is a malformed request. Field names the parameter.
type inputError struct {
	Field   string
	Message string
}

func (e *inputError) Error() string { return e.Field + ": " + e.Message }

func invalidf(field, format string, args ...any) error {
	return &inputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

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
	var in *inputError
	switch {
	case errors.As(err, &in):
		return problem{http.StatusBadRequest, CodeInvalidRequest, in.Error(), map[string]any{"field": in.Field}}
	case unavailable(err):
		return problem{http.StatusServiceUnavailable, CodeUnavailable, "the audit log is unavailable; retry later", nil}
	}
	return problem{http.StatusInternalServerError, CodeInternal, "internal error", nil}
}

// unavailable reports whether err says the database cannot be reached or the request ran out
// of time, rather than that the request is wrong.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && len(pg.Code) == 5 {
		switch pg.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57": // operator intervention: shutdown, cancelled statement
			return true
		}
	}
	return false
}

// writeError answers with the error envelope. Server-side failures are logged with the
// request's route and correlation id.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 {
		level := slog.LevelError
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug // the client went away
		}
		a.lg.LogAttrs(r.Context(), level, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.Int("status", p.status), slog.String("correlation_id", httpx.CorrelationID(r)),
			slog.String("error", err.Error()))
	}
	httpx.WriteErrorFields(w, p.status, p.code, p.message, p.fields)
}

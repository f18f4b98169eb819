package api

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// Options tune the API.
type Options struct {
	// Logger receives server-side failures (slog.Default when nil).
	Logger *slog.Logger
}

// API serves the sent log.
type API struct {
	sent *notify.SentLog
	errs httpx.Errors
}

// New returns the API on the sent log l.
func New(l *notify.SentLog, opts Options) *API {
	return &API{sent: l, errs: httpx.Errors{Dependency: "the sent log", Logger: opts.Logger}}
}

// Register adds the routes to r, documented for /openapi.json.
func (a *API) Register(r *httpx.Router) {
	r.HandleFunc("GET", "/v1/notifications", listOp, a.errs.Handler(a.list))
}

// page is the answer of GET /v1/notifications.
type page struct {
	Notifications []notify.Notification `json:"notifications"`
	NextCursor    string                `json:"next_cursor,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	personal := auth.SeesPersonalData(r.Context())
	if q.To != "" && !personal {
		// Filtering by address would tell a caller who may not see addresses which ones
		// were sent to.
		return fmt.Errorf("%w: the to filter needs the %s scope", httpx.ErrForbidden, auth.ScopePersonalData)
	}
	rows, more, err := a.sent.List(r.Context(), q)
	if err != nil {
		return err
	}
	if !personal {
		for i := range rows { // the subject carries the user's name
			rows[i].To, rows[i].Subject = auth.Redacted, auth.Redacted
		}
	}
	p := page{Notifications: rows}
	if more {
		p.NextCursor = httpx.EncodeCursor(rows[len(rows)-1].EventID)
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

var known = []string{"to", "event_id", "limit", "cursor"}

// parseQuery reads the filter and page of GET /v1/notifications. A parameter given with an
// empty value is malformed, as on every other route. A cursor is the event id of the last row of the page before, and so valid for
// any filter.
func parseQuery(r *http.Request) (notify.SentQuery, error) {
	var q notify.SentQuery
	hq, err := httpx.ParseQuery(r, known...)
	if err != nil {
		return q, err
	}
	// Every parameter is checked for repeats before any value is checked, so that a repeated
	// parameter is refused as such even when another one is also wrong.
	vals := make(map[string]string, len(known))
	for _, k := range known {
		var given bool
		if vals[k], given, err = hq.One(k); err != nil {
			return q, err
		}
		if given && vals[k] == "" {
			return q, httpx.Invalidf(k, "is empty; leave the parameter out instead")
		}
	}
	if s := vals["to"]; s != "" {
		// Only addresses that the domain takes are ever sent to: anything else is a
		// malformed filter rather than one that matches nothing.
		if domain.ValidateEmail("to", s) != nil {
			return q, httpx.Invalidf("to", "must be an email address of at most %d bytes", domain.MaxEmailLength)
		}
		q.To = s
	}
	if s := vals["event_id"]; s != "" {
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return q, httpx.Invalidf("event_id", "must be a UUID such as 0190a4b2-7f3c-7a00-8000-000000000001")
		}
		q.EventID = id
	}
	q.Limit = notify.DefaultLimit
	if vals["limit"] != "" {
		n, _, err := hq.Int("limit", 1, notify.MaxLimit, notify.DefaultLimit)
		if err != nil {
			return q, err
		}
		q.Limit = int(n)
	}
	if s := vals["cursor"]; s != "" {
		after, err := httpx.DecodeCursor(s)
		if err != nil {
			return q, err
		}
		q.After = after
	}
	return q, nil
}

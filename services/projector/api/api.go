package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// MaxWait is the longest read-your-writes wait a request may ask for.
const MaxWait = 30 * time.Second

// waitPattern is the form of a wait: 0, up to 30 seconds in seconds with at most three
// decimals, or up to 30,000 milliseconds. /openapi.json documents it as is.
const waitPattern = `^(0|([0-9]|[12][0-9])(\.[0-9]{1,3})?s|30(\.0{1,3})?s|([0-9]{1,4}|[12][0-9]{4}|30000)ms)$`

var waitForm = regexp.MustCompile(waitPattern)

// Options tune the API.
type Options struct {
	// Logger receives server-side failures (slog.Default when nil).
	Logger *slog.Logger
}

// API serves the projector's query routes on a Projection.
type API struct {
	p    *readmodel.Projection
	errs httpx.Errors
}

// New returns the API on p.
func New(p *readmodel.Projection, opts Options) *API {
	return &API{p: p, errs: httpx.Errors{Dependency: "the read models", Rules: errorRules, Logger: opts.Logger}}
}

// readPage reads limit and cursor. A cursor is the id of the last row of the page before, and
// so valid for any filter of the same list.
func readPage(q httpx.Query) (limit int, after uuid.UUID, err error) {
	n, _, err := q.Int("limit", 1, readmodel.MaxLimit, readmodel.DefaultLimit)
	if err != nil {
		return 0, uuid.Nil, err
	}
	s, ok, err := q.One("cursor")
	if err != nil || !ok {
		return int(n), uuid.Nil, err
	}
	after, err = httpx.DecodeCursor(s)
	if err != nil {
		return 0, uuid.Nil, err
	}
	return int(n), after, nil
}

// readWait reads min_version and wait. min_version alone answers at once; wait alone waits
// for the row to exist.
func readWait(q httpx.Query) (readmodel.Wait, error) {
	w := readmodel.Wait{MinVersion: -1}
	v, hasVersion, err := q.Int("min_version", 0, math.MaxInt64, -1)
	if err != nil {
		return w, err
	}
	s, hasWait, err := q.One("wait")
	if err != nil {
		return w, err
	}
	if hasWait {
		d, err := time.ParseDuration(s)
		if err != nil || !waitForm.MatchString(s) || d < 0 || d > MaxWait {
			return w, httpx.Invalidf("wait", "must be a duration from 0s to %s, such as 2s or 500ms", MaxWait)
		}
		w.For, w.MinVersion = d, 0
	}
	if hasVersion {
		w.MinVersion = v
	}
	return w, nil
}

// pathID reads a UUID from the path.
func pathID(r *http.Request) (uuid.UUID, error) {
	s := r.PathValue("id")
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		return uuid.Nil, httpx.Invalidf("id", "must be a UUID such as 0190a4b2-7f3c-7a00-8000-000000000001")
	}
	return id, nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

var (
	userStatuses  = []string{string(domain.UserStatusActive), string(domain.UserStatusDeactivated)}
	orderStatuses = []string{string(domain.OrderStatusPending), string(domain.OrderStatusConfirmed),
		string(domain.OrderStatusCancelled), string(domain.OrderStatusShipped)}
)

type userPage struct {
	Users      []readmodel.User `json:"users"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

type orderPage struct {
	Orders     []readmodel.Order `json:"orders"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// getOne answers with the row named by the path, once the read model has it at the version
// the query asks for; its version is the ETag.
func getOne[T any](w http.ResponseWriter, r *http.Request, at func(context.Context, uuid.UUID, readmodel.Wait) (T, error), version func(T) int64) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q, err := httpx.ParseQuery(r, "min_version", "wait")
	if err != nil {
		return err
	}
	wait, err := readWait(q)
	if err != nil {
		return err
	}
	row, err := at(r.Context(), id, wait)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(version(row)))
	httpx.WriteJSON(w, http.StatusOK, row)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	at := func(ctx context.Context, id uuid.UUID, wait readmodel.Wait) (readmodel.User, error) {
		u, err := a.p.UserAt(ctx, id, wait)
		return redactUser(r, u), err
	}
	return getOne(w, r, at, func(u readmodel.User) int64 { return u.Version })
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) error {
	return getOne(w, r, a.p.OrderAt, func(o readmodel.Order) int64 { return o.Version })
}

// listQuery reads the query of a list: a status among statuses, and the page.
func listQuery(r *http.Request, statuses []string) (status string, limit int, after uuid.UUID, err error) {
	q, err := httpx.ParseQuery(r, "status", "limit", "cursor")
	if err != nil {
		return "", 0, uuid.Nil, err
	}
	if status, err = q.Enum("status", statuses...); err != nil {
		return "", 0, uuid.Nil, err
	}
	limit, after, err = readPage(q)
	return status, limit, after, err
}

// nextCursor is the cursor of the page after rows, when more follow.
func nextCursor[T any](rows []T, more bool, id func(T) uuid.UUID) string {
	if !more || len(rows) == 0 {
		return ""
	}
	return httpx.EncodeCursor(id(rows[len(rows)-1]))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	status, limit, after, err := listQuery(r, userStatuses)
	if err != nil {
		return err
	}
	users, more, err := a.p.Users(r.Context(), readmodel.UserQuery{Status: domain.UserStatus(status), After: after, Limit: limit})
	if err != nil {
		return err
	}
	for i := range users {
		users[i] = redactUser(r, users[i])
	}
	httpx.WriteJSON(w, http.StatusOK, userPage{Users: users, NextCursor: nextCursor(users, more, func(u readmodel.User) uuid.UUID { return u.ID })})
	return nil
}

func (a *API) listOrders(w http.ResponseWriter, r *http.Request) error {
	return writeOrders(w, r, a.p.Orders)
}

func (a *API) userOrders(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	return writeOrders(w, r, func(ctx context.Context, oq readmodel.OrderQuery) ([]readmodel.Order, bool, error) {
		return a.p.UserOrders(ctx, id, oq)
	})
}

// writeOrders answers with the page of orders that fetch reads for the request's query.
func writeOrders(w http.ResponseWriter, r *http.Request, fetch func(context.Context, readmodel.OrderQuery) ([]readmodel.Order, bool, error)) error {
	status, limit, after, err := listQuery(r, orderStatuses)
	if err != nil {
		return err
	}
	orders, more, err := fetch(r.Context(), readmodel.OrderQuery{Status: domain.OrderStatus(status), After: after, Limit: limit})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, orderPage{Orders: orders, NextCursor: nextCursor(orders, more, func(o readmodel.Order) uuid.UUID { return o.ID })})
	return nil
}

func (a *API) orderStats(w http.ResponseWriter, r *http.Request) error {
	if _, err := httpx.ParseQuery(r); err != nil {
		return err
	}
	s, err := a.p.OrderStats(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s)
	return nil
}

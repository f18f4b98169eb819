package api

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// MaxWait is the longest read-your-writes wait a request may ask for.
const MaxWait = 30 * time.Second

// Options tune the API.
type Options struct {
	// Logger receives server-side failures (slog.Default when nil).
	Logger *slog.Logger
}

// API serves the projector's query routes on a Projection.
type API struct {
	p   *readmodel.Projection
	log *slog.Logger
}

// New returns the API on p.
func New(p *readmodel.Projection, opts Options) *API {
	a := &API{p: p, log: opts.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	return a
}

// Register adds the projector's query routes on p to r, documented for /openapi.json, with
// the default options. New(p, opts).Register(r) takes options.
func Register(r *httpx.Router, p *readmodel.Projection) { New(p, Options{}).Register(r) }

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
		if err != nil || d < 0 || d > MaxWait {
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

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	q, err := httpx.ParseQuery(r, "min_version", "wait")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	wait, err := readWait(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.p.UserAt(r.Context(), id, wait)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(u.Version))
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	q, err := httpx.ParseQuery(r, "min_version", "wait")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	wait, err := readWait(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	o, err := a.p.OrderAt(r.Context(), id, wait)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(o.Version))
	httpx.WriteJSON(w, http.StatusOK, o)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	q, err := httpx.ParseQuery(r, "status", "limit", "cursor")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	status, err := q.Enum("status", userStatuses...)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	limit, after, err := readPage(q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	users, more, err := a.p.Users(r.Context(), readmodel.UserQuery{Status: domain.UserStatus(status), After: after, Limit: limit})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page := userPage{Users: users}
	if more {
		page.NextCursor = httpx.EncodeCursor(users[len(users)-1].ID)
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

// orderQuery reads the query of the order lists.
func orderQuery(r *http.Request) (readmodel.OrderQuery, error) {
	q, err := httpx.ParseQuery(r, "status", "limit", "cursor")
	if err != nil {
		return readmodel.OrderQuery{}, err
	}
	status, err := q.Enum("status", orderStatuses...)
	if err != nil {
		return readmodel.OrderQuery{}, err
	}
	limit, after, err := readPage(q)
	if err != nil {
		return readmodel.OrderQuery{}, err
	}
	return readmodel.OrderQuery{Status: domain.OrderStatus(status), After: after, Limit: limit}, nil
}

func (a *API) writeOrders(w http.ResponseWriter, orders []readmodel.Order, more bool) {
	page := orderPage{Orders: orders}
	if more {
		page.NextCursor = httpx.EncodeCursor(orders[len(orders)-1].ID)
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

func (a *API) listOrders(w http.ResponseWriter, r *http.Request) {
	oq, err := orderQuery(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	orders, more, err := a.p.Orders(r.Context(), oq)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeOrders(w, orders, more)
}

func (a *API) userOrders(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	oq, err := orderQuery(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	orders, more, err := a.p.UserOrders(r.Context(), id, oq)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeOrders(w, orders, more)
}

func (a *API) orderStats(w http.ResponseWriter, r *http.Request) {
	if _, err := httpx.ParseQuery(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := a.p.OrderStats(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s)
}

package api

import (
	"math"
	"net/http"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
)

// Paging limits.
const (
	DefaultLimit  = 100
	MaxLimit      = 1000
	MaxTypes      = 20 // type parameters of GET /v1/events
	DefaultRecent = 10 // recent events in GET /v1/stats
	MaxRecent     = 100
)

type userView struct {
	domain.UserState
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
}

type orderView struct {
	domain.OrderState
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
}

// loadAt loads the aggregate named by the path as it is, or as it was at ?version=N or
// ?at=<RFC 3339>.
func loadAt[S any](r *http.Request, repo *events.Repository[S]) (*events.Aggregate[S], error) {
	id, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	q, err := httpx.ParseQuery(r, "version", "at")
	if err != nil {
		return nil, err
	}
	version, hasVersion, err := q.Int("version", 0, math.MaxInt64, 0)
	if err != nil {
		return nil, err
	}
	at, hasAt, err := q.Time("at")
	if err != nil {
		return nil, err
	}
	var agg *events.Aggregate[S]
	switch {
	case hasVersion && hasAt:
		return nil, httpx.Invalidf("", "give version or at, not both")
	case hasVersion:
		agg, _, err = repo.LoadVersion(r.Context(), id, version)
	case hasAt:
		agg, _, err = repo.LoadAt(r.Context(), id, at)
	default:
		agg, _, err = repo.Load(r.Context(), id)
	}
	return agg, err
}

// getState answers with the aggregate named by the path, as loadAt reads it; its version is
// the ETag.
func getState[S, V any](w http.ResponseWriter, r *http.Request, repo *events.Repository[S], view func(*events.Aggregate[S]) V) error {
	agg, err := loadAt(r, repo)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(agg.Version()))
	httpx.WriteJSON(w, http.StatusOK, view(agg))
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := loadAt(r, a.users)
	if err != nil {
		return err
	}
	st, err := a.openUser(r, u.State())
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version()))
	httpx.WriteJSON(w, http.StatusOK, userView{UserState: st, StreamID: u.StreamID(), Version: u.Version()})
	return nil
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) error {
	return getState(w, r, a.orders, func(o *events.Aggregate[domain.OrderState]) orderView {
		return orderView{OrderState: o.State(), StreamID: o.StreamID(), Version: o.Version()}
	})
}

func pathStreamID(r *http.Request) (string, error) {
	id := r.PathValue("stream_id")
	if err := events.ValidateStreamID(id); err != nil {
		return "", httpx.Invalidf("stream_id", "must be <category>-<id>, such as user-0190a4b2-7f3c-7a00-8000-000000000001")
	}
	return id, nil
}

func (a *API) getStream(w http.ResponseWriter, r *http.Request) error {
	id, err := pathStreamID(r)
	if err == nil {
		_, err = httpx.ParseQuery(r)
	}
	if err != nil {
		return err
	}
	info, err := a.store.StreamInfo(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(info.Version))
	httpx.WriteJSON(w, http.StatusOK, info)
	return nil
}

// streamPage is a page of one stream's events.
type streamPage struct {
	StreamID string            `json:"stream_id"`
	Events   []events.Envelope `json:"events"`
	// NextFrom is the from of the next page; absent on the last page.
	NextFrom *int64 `json:"next_from,omitempty"`
}

func (a *API) getStreamEvents(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, a.streamEvents)
}

// writePage answers with the page that read reads for the request.
func writePage[P any](w http.ResponseWriter, r *http.Request, read func(*http.Request) (P, error)) error {
	page, err := read(r)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, page)
	return nil
}

func (a *API) streamEvents(r *http.Request) (streamPage, error) {
	id, err := pathStreamID(r)
	if err != nil {
		return streamPage{}, err
	}
	q, err := httpx.ParseQuery(r, "from", "to", "limit")
	if err != nil {
		return streamPage{}, err
	}
	from, _, err := q.Int("from", 0, math.MaxInt64, 0)
	if err != nil {
		return streamPage{}, err
	}
	to, hasTo, err := q.Int("to", 0, math.MaxInt64, -1)
	if err != nil {
		return streamPage{}, err
	}
	if hasTo && to < from {
		return streamPage{}, httpx.Invalidf("to", "must not be below from")
	}
	limit, _, err := q.Int("limit", 1, MaxLimit, DefaultLimit)
	if err != nil {
		return streamPage{}, err
	}
	evs, err := a.store.ReadStream(r.Context(), id, from, to, int(limit))
	if err != nil {
		return streamPage{}, err
	}
	if len(evs) == 0 {
		if _, err := a.store.StreamInfo(r.Context(), id); err != nil {
			return streamPage{}, err // not found: 404 rather than an empty page
		}
		evs = []events.Envelope{}
	}
	page := streamPage{StreamID: id, Events: redactEvents(r, evs)}
	if len(evs) == int(limit) {
		if next := evs[len(evs)-1].Version + 1; !hasTo || next <= to {
			page.NextFrom = &next
		}
	}
	return page, nil
}

// allPage is a page of the all-stream.
type allPage struct {
	Events []events.Envelope `json:"events"`
	// NextAfter is the after of the next page: the last position of this one (or the
	// request's after when the page is empty).
	NextAfter int64 `json:"next_after"`
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, a.allEvents)
}

func (a *API) allEvents(r *http.Request) (allPage, error) {
	q, err := httpx.ParseQuery(r, "after", "limit", "since", "until", "type")
	if err != nil {
		return allPage{}, err
	}
	var aq events.AllQuery
	if aq.After, _, err = q.Int("after", 0, math.MaxInt64, 0); err != nil {
		return allPage{}, err
	}
	limit, _, err := q.Int("limit", 1, MaxLimit, DefaultLimit)
	if err != nil {
		return allPage{}, err
	}
	aq.Limit = int(limit)
	if aq.Since, _, err = q.Time("since"); err != nil {
		return allPage{}, err
	}
	if aq.Until, _, err = q.Time("until"); err != nil {
		return allPage{}, err
	}
	if !aq.Since.IsZero() && !aq.Until.IsZero() && !aq.Until.After(aq.Since) {
		return allPage{}, httpx.Invalidf("until", "must be after since")
	}
	aq.Types = q.Values("type")
	if len(aq.Types) > MaxTypes {
		return allPage{}, httpx.Invalidf("type", "at most %d types", MaxTypes)
	}
	for _, t := range aq.Types {
		if !httpx.ValidFilter(t) {
			return allPage{}, httpx.Invalidf("type", "must be 1 to %d characters of UTF-8, without NUL", httpx.MaxFilterLength)
		}
	}
	evs, err := a.store.ReadAll(r.Context(), aq)
	if err != nil {
		return allPage{}, err
	}
	page := allPage{Events: redactEvents(r, evs), NextAfter: aq.After}
	if len(evs) == 0 {
		page.Events = []events.Envelope{}
	} else {
		page.NextAfter = evs[len(evs)-1].GlobalPosition
	}
	return page, nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) error {
	q, err := httpx.ParseQuery(r, "recent")
	if err != nil {
		return err
	}
	recent, _, err := q.Int("recent", 0, MaxRecent, DefaultRecent)
	if err != nil {
		return err
	}
	st, err := a.store.Stats(r.Context(), int(recent))
	if err != nil {
		return err
	}
	st.RecentEvents = redactEvents(r, st.RecentEvents)
	httpx.WriteJSON(w, http.StatusOK, st)
	return nil
}

package api

import (
	"log/slog"
	"math"
	"net/http"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// Limits of the query parameters.
const (
	MaxTypes = 20 // type parameters of GET /v1/audit
)

// Options tune the API.
type Options struct {
	// Logger receives server-side failures (slog.Default when nil).
	Logger *slog.Logger
	// PageSize is how many entries a verification reads per query (auditlog.DefaultPageSize
	// when 0).
	PageSize int
}

// API serves the auditor's routes on a Log.
type API struct {
	log  *auditlog.Log
	opts Options
	lg   *slog.Logger
	errs httpx.Errors
}

// New returns the API on l.
func New(l *auditlog.Log, opts Options) *API {
	a := &API{log: l, opts: opts, lg: opts.Logger}
	if a.lg == nil {
		a.lg = slog.Default()
	}
	a.errs = httpx.Errors{Dependency: "the audit log", Logger: a.lg}
	return a
}

// page is the answer of GET /v1/audit.
type page struct {
	Entries []auditlog.Entry `json:"entries"`
	// NextAfter is the after of the next page: the last sequence number of this one (or the
	// request's after when the page is empty).
	NextAfter int64 `json:"next_after"`
	// More is true when entries that match follow this page.
	More bool `json:"more"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	aq, err := parseAuditQuery(r)
	if err != nil {
		return err
	}
	entries, more, err := a.log.Query(r.Context(), aq)
	if err != nil {
		return err
	}
	if !auth.SeesPersonalData(r.Context()) {
		for i := range entries {
			entries[i].Data = domain.RedactPersonalData(entries[i].Type, entries[i].Data, auth.Redacted)
		}
	}
	p := page{Entries: entries, NextAfter: aq.After, More: more}
	if len(entries) > 0 {
		p.NextAfter = entries[len(entries)-1].Seq
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func parseAuditQuery(r *http.Request) (auditlog.Query, error) {
	q, err := httpx.ParseQuery(r, "stream_id", "type", "since", "until", "after", "limit")
	if err != nil {
		return auditlog.Query{}, err
	}
	var aq auditlog.Query
	if aq.After, _, err = q.Int("after", 0, math.MaxInt64, 0); err != nil {
		return aq, err
	}
	limit, _, err := q.Int("limit", 1, auditlog.MaxLimit, auditlog.DefaultLimit)
	if err != nil {
		return aq, err
	}
	aq.Limit = int(limit)
	if s, ok, err := q.One("stream_id"); err != nil {
		return aq, err
	} else if ok {
		if !httpx.ValidFilter(s) {
			return aq, httpx.Invalidf("stream_id", "must be 1 to %d characters of UTF-8, without NUL", httpx.MaxFilterLength)
		}
		aq.StreamID = s
	}
	aq.Types = q.Values("type")
	if len(aq.Types) > MaxTypes {
		return aq, httpx.Invalidf("type", "at most %d types", MaxTypes)
	}
	for _, t := range aq.Types {
		if !httpx.ValidFilter(t) {
			return aq, httpx.Invalidf("type", "must be 1 to %d characters of UTF-8, without NUL", httpx.MaxFilterLength)
		}
	}
	if aq.Since, _, err = q.Time("since"); err != nil {
		return aq, err
	}
	if aq.Until, _, err = q.Time("until"); err != nil {
		return aq, err
	}
	if !aq.Since.IsZero() && !aq.Until.IsZero() && !aq.Until.After(aq.Since) {
		return aq, httpx.Invalidf("until", "must be after since")
	}
	return aq, nil
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) error {
	if _, err := httpx.ParseQuery(r); err != nil {
		return err
	}
	rep, err := a.log.Verify(r.Context(), auditlog.VerifyOptions{PageSize: a.opts.PageSize})
	if err != nil {
		return err
	}
	if !rep.OK {
		a.lg.LogAttrs(r.Context(), slog.LevelError, "audit log: the chain is broken",
			slog.Int64("seq", rep.Break.Seq), slog.String("problem", string(rep.Break.Problem)),
			slog.String("correlation_id", httpx.CorrelationID(r)))
	}
	httpx.WriteJSON(w, http.StatusOK, verifyAnswer{Report: rep, TookMS: float64(rep.Took.Microseconds()) / 1000})
	return nil
}

// verifyAnswer is the answer of GET /v1/audit/verify.
type verifyAnswer struct {
	auditlog.Report
	TookMS float64 `json:"took_ms"`
}

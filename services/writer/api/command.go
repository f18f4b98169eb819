package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/hops"
)

// Headers of commands.
const (
	IfMatchHeader        = "If-Match"
	IdempotencyKeyHeader = "Idempotency-Key"
	// CommandIDHeader returns the id of the command a request ran, which is the causation id
	// of the events it recorded.
	CommandIDHeader = "X-Command-ID"
	// ReplayedHeader marks a response replayed from an earlier request with the same
	// Idempotency-Key.
	ReplayedHeader = "Idempotent-Replayed"
)

// MaxIdempotencyKeyLength bounds Idempotency-Key values.
const MaxIdempotencyKeyLength = 200

// commandResponse is the body of every successful command.
type commandResponse struct {
	ID       string `json:"id"`
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
	Position int64  `json:"position"`
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func writeCommand(w http.ResponseWriter, status int, resp commandResponse) {
	w.Header().Set("ETag", etag(resp.Version))
	httpx.WriteJSON(w, status, resp)
}

// request is what a command reads before it runs.
type request struct {
	body       []byte
	ifMatch    int64
	hasIfMatch bool
	key        string // Idempotency-Key; empty when absent
	hash       []byte // of method, path and body, when key is set
}

// parseIfMatch reads If-Match: "<version>" (quotes optional, one value).
func parseIfMatch(values []string) (int64, bool, error) {
	if len(values) == 0 {
		return 0, false, nil
	}
	bad := httpx.Invalidf(IfMatchHeader, `must be one stream version in quotes, such as "3"`)
	if len(values) > 1 {
		return 0, false, bad
	}
	s := strings.TrimSpace(values[0])
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || s[0] == '+' {
		return 0, false, bad
	}
	return v, true, nil
}

// parseIdempotencyKey reads Idempotency-Key: 1 to MaxIdempotencyKeyLength printable ASCII
// characters.
func parseIdempotencyKey(values []string) (string, error) {
	if len(values) == 0 {
		return "", nil
	}
	bad := httpx.Invalidf(IdempotencyKeyHeader, "must be one value of 1 to %d printable ASCII characters", MaxIdempotencyKeyLength)
	if len(values) > 1 {
		return "", bad
	}
	k := values[0]
	if k == "" || len(k) > MaxIdempotencyKeyLength {
		return "", bad
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return "", bad
		}
	}
	return k, nil
}

// requestHash identifies a request for its idempotency key: SHA-256 over the method, the
// path and the exact body.
func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(r.Method))
	h.Write([]byte{0})
	h.Write([]byte(r.URL.EscapedPath()))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// begin reads the body and the command headers, and answers a request whose idempotency key
// has a stored response. It returns a nil request when it has answered, or with the error to
// answer with.
func (a *API) begin(w http.ResponseWriter, r *http.Request) (*request, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	req := &request{body: body}
	if req.ifMatch, req.hasIfMatch, err = parseIfMatch(r.Header.Values(IfMatchHeader)); err != nil {
		return nil, err
	}
	if req.key, err = parseIdempotencyKey(r.Header.Values(IdempotencyKeyHeader)); err != nil {
		return nil, err
	}
	if req.key != "" {
		req.hash = requestHash(r, body)
		if done, err := a.answerStored(w, r, req); done || err != nil {
			return nil, err
		}
	}
	return req, nil
}

// answerStored answers from what was recorded under the request's idempotency key: the same
// response for the same request, errKeyReused for another. It reports whether there was one;
// an error without it is a failure to look the key up.
func (a *API) answerStored(w http.ResponseWriter, r *http.Request, req *request) (bool, error) {
	stored, ok, err := a.store.LookupIdempotency(r.Context(), req.key)
	if err != nil || !ok {
		return false, err
	}
	w.Header().Del(CommandIDHeader) // this request runs no command
	if !bytes.Equal(stored.RequestHash, req.hash) {
		return true, errKeyReused
	}
	w.Header().Set(ReplayedHeader, "true")
	writeCommand(w, stored.Status, storedResponse(stored.Result)) // the same bytes as the first response
	return true, nil
}

// storedResponse renders the response of a command from where its append landed; the id is
// the stream id's after its category.
func storedResponse(res events.AppendResult) commandResponse {
	id := strings.TrimPrefix(res.StreamID, events.Category(res.StreamID)+"-")
	return commandResponse{ID: id, StreamID: res.StreamID, Version: res.LastVersion, Position: res.LastPosition}
}

// command is one command on one aggregate.
type command[S any] struct {
	repo *events.Repository[S]
	id   string
	// create: a missing aggregate is created (201) rather than not found (404).
	create bool
	// fresh: the server has just picked the id, a new UUIDv7, so that no stream has it yet
	// and the first attempt starts from a new aggregate without reading the store. Its append
	// still expects no stream: should one exist after all, the append conflicts (unless
	// OPTIMISTIC_CONCURRENCY=false turned the check off), and the next attempt loads it.
	fresh bool
	// run checks the rules and records events on the aggregate.
	run func(ctx context.Context, agg *events.Aggregate[S]) error
}

func (c command[S]) load(ctx context.Context, attempt int) (*events.Aggregate[S], error) {
	if c.fresh && attempt == 0 {
		return c.repo.New(c.id), nil
	}
	agg, _, err := c.repo.Load(ctx, c.id)
	if c.create && errors.Is(err, events.ErrNotFound) {
		return c.repo.New(c.id), nil
	}
	return agg, err
}

// execute runs c: load, If-Match, the command, save; a version conflict without If-Match is
// retried with a fresh load. With an idempotency key, a failure first checks whether a
// concurrent request with the same key has committed meanwhile, and answers as it did.
func execute[S any](a *API, w http.ResponseWriter, r *http.Request, req *request, c command[S]) error {
	ctx := r.Context()
	commandID := uuid.Must(uuid.NewV7())
	w.Header().Set(CommandIDHeader, commandID.String())
	// The actor, who sent the command, goes on every event it records (internal/auth).
	opts := events.AppendOptions{CorrelationID: httpx.CorrelationID(r), CausationID: commandID.String(), Metadata: auth.Actor(ctx)}
	status := http.StatusOK
	if c.create {
		status = http.StatusCreated
	}
	for attempt := 0; ; attempt++ {
		resp, err := attemptCommand(ctx, a, req, c, attempt, status, opts)
		if err == nil {
			if at := httpx.Started(r); !at.IsZero() {
				a.hops.Observe(hops.CommandToCommit, time.Since(at))
			}
			writeCommand(w, status, resp)
			return nil
		}
		if req.key != "" {
			done, lerr := a.answerStored(w, r, req)
			if done {
				return lerr
			}
			if lerr != nil {
				return err // the command's failure, not the look-up's
			}
		}
		// After a conflict, a fresh load re-runs the command or, with If-Match, tells the
		// client the version it now has.
		var vc *events.VersionConflictError
		if conflicted(err) && attempt < a.retries && !(req.hasIfMatch && errors.As(err, &vc)) {
			continue
		}
		return err
	}
}

func attemptCommand[S any](ctx context.Context, a *API, req *request, c command[S], attempt, status int, opts events.AppendOptions) (commandResponse, error) {
	agg, err := c.load(ctx, attempt)
	if err != nil {
		return commandResponse{}, err
	}
	if req.hasIfMatch && agg.Version() != req.ifMatch {
		return commandResponse{}, &events.VersionConflictError{StreamID: agg.StreamID(), Expected: events.Exact(req.ifMatch), Actual: agg.Version()}
	}
	if err := c.run(ctx, agg); err != nil {
		return commandResponse{}, err
	}
	if req.key != "" {
		opts.Idempotency = &events.IdempotencyKey{Key: req.key, RequestHash: req.hash, Status: status}
	}
	res, err := c.repo.Save(ctx, agg, opts)
	if err != nil {
		return commandResponse{}, err
	}
	return responseFor(agg, res), nil
}

func responseFor[S any](agg *events.Aggregate[S], res events.AppendResult) commandResponse {
	return commandResponse{ID: agg.ID(), StreamID: agg.StreamID(), Version: res.LastVersion, Position: res.LastPosition}
}

// conflicted reports whether the save lost a race: the stream changed since the load, or a
// concurrent request took the idempotency key.
func conflicted(err error) bool {
	var vc *events.VersionConflictError
	if errors.As(err, &vc) || errors.Is(err, events.ErrIdempotencyKeyTaken) {
		return true
	}
	return postgres.Conflict(err)
}

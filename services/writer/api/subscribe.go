package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/feed"
)

// The live feed, GET /v1/subscribe: the all-stream as Server-Sent Events, from a pkg/feed
// subscription.
const (
	// DefaultHeartbeat is how often an idle stream gets a comment line (FEED_HEARTBEAT_INTERVAL).
	DefaultHeartbeat = 15 * time.Second
	// MaxSubscribeWait is the longest bound a subscriber may put on its stream (wait).
	MaxSubscribeWait = 30 * time.Second
	// LastEventIDHeader resumes a stream after the position it names, as EventSource sends it.
	LastEventIDHeader = "Last-Event-ID"
	// writeWindow is how long one write to a subscriber may block, beyond a heartbeat, before
	// the stream ends.
	writeWindow = 30 * time.Second
	// drainBatch is how many waiting events go out in one flush.
	drainBatch = 64
)

// waitPattern is the form of a wait: 0, up to 30 seconds in seconds with at most three
// decimals, or in milliseconds (the projector's read-your-writes wait has the same form).
const waitPattern = `^(0|([0-9]|[12][0-9])(\.[0-9]{1,3})?s|30(\.0{1,3})?s|([0-9]{1,4}|[12][0-9]{4}|30000)ms)$`

// typesPattern is a comma-separated list of 1 to MaxTypes event types, each a text filter
// without a comma.
const typesPattern = `^[^\x00,]{1,200}(,[^\x00,]{1,200}){0,19}$`

var (
	waitForm       = regexp.MustCompile(waitPattern)
	categoryForm   = regexp.MustCompile(categoryPattern)
	lastEventIDRE  = regexp.MustCompile(`^[0-9]{1,18}$`)
	errFeedOff     = errors.New("the live feed is not running in this process")
	errFeedStopped = errors.New("the writer is stopping; subscribe again to another")
)

// categoryPattern is a stream category: what comes before the first '-' of a stream id.
const categoryPattern = `^[a-z0-9_]{1,198}$`

// FenceWatch is how often WatchAllStream measures the appends left open.
const FenceWatch = 10 * time.Second

// WatchAllStream measures the appends left open, which hold the all-stream
// (annals_store_all_stream_held_seconds), every FenceWatch until ctx ends, on a store whose
// open appends can hold it (PostgreSQL); then it closes the live feed, whose streams end at
// once rather than hold up the shutdown. Run it as one of the process's components.
func (a *API) WatchAllStream(ctx context.Context) error {
	if w, ok := a.store.(fenceWatcher); ok {
		w.WatchFences(ctx, FenceWatch)
	} else {
		<-ctx.Done()
	}
	if a.feed != nil {
		a.feed.Close()
	}
	return nil
}

// subscribeRules map the feed's refusals.
var subscribeRules = []httpx.Rule{
	httpx.Is(feed.ErrTooManySubscribers, httpx.Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
		Message: "too many subscribers on this writer (FEED_MAX_SUBSCRIBERS); retry later",
		Header:  http.Header{"Retry-After": {"5"}}}),
	httpx.Is(feed.ErrClosed, httpx.Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: errFeedStopped.Error()}),
	httpx.Is(errFeedOff, httpx.Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable}),
}

// subscribeRequest is what GET /v1/subscribe asks for.
type subscribeRequest struct {
	filter  feed.Filter
	wait    time.Duration
	bounded bool
}

// parseSubscribe reads types, category, after, wait and Last-Event-ID (which wins over after,
// as a reconnecting EventSource sends both).
func parseSubscribe(r *http.Request) (subscribeRequest, error) {
	req := subscribeRequest{filter: feed.Filter{After: feed.Now}}
	q, err := httpx.ParseQuery(r, "types", "category", "after", "wait")
	if err != nil {
		return req, err
	}
	if s, ok, err := q.One("types"); err != nil {
		return req, err
	} else if ok {
		types := strings.Split(s, ",")
		if len(types) > MaxTypes {
			return req, httpx.Invalidf("types", "at most %d types", MaxTypes)
		}
		for _, t := range types {
			if !httpx.ValidFilter(t) {
				return req, httpx.Invalidf("types", "must be event types separated by commas, each 1 to %d characters of UTF-8 without NUL", httpx.MaxFilterLength)
			}
		}
		req.filter.Types = types
	}
	if s, ok, err := q.One("category"); err != nil {
		return req, err
	} else if ok {
		if !categoryForm.MatchString(s) {
			return req, httpx.Invalidf("category", "must be a stream category: 1 to 198 of a-z, 0-9 and _")
		}
		req.filter.Category = s
	}
	if after, ok, err := q.Int("after", 0, math.MaxInt64, 0); err != nil {
		return req, err
	} else if ok {
		req.filter.After = after
	}
	if vs := r.Header.Values(LastEventIDHeader); vs != nil {
		if len(vs) != 1 || !lastEventIDRE.MatchString(vs[0]) {
			return req, httpx.Invalidf(LastEventIDHeader, "must be the id of an event of this stream: a position, 1 to 18 digits")
		}
		req.filter.After, _ = strconv.ParseInt(vs[0], 10, 64)
	}
	if s, ok, err := q.One("wait"); err != nil {
		return req, err
	} else if ok {
		d, err := time.ParseDuration(s)
		if err != nil || !waitForm.MatchString(s) || d < 0 || d > MaxSubscribeWait {
			return req, httpx.Invalidf("wait", "must be a duration from 0s to %s, such as 2s or 500ms", MaxSubscribeWait)
		}
		req.wait, req.bounded = d, true
	}
	return req, nil
}

// subscribe streams the all-stream as Server-Sent Events: each event with its position as id,
// its type as event and itself, as GET /v1/events shows it, as data. It starts with an id-only
// message naming where it starts, sends a comment line when idle for a heartbeat, and ends with
// an event "dropped" when the subscriber fell too far behind.
func (a *API) subscribe(w http.ResponseWriter, r *http.Request) error {
	req, err := parseSubscribe(r)
	if err != nil {
		return err
	}
	if a.feed == nil {
		return errFeedOff
	}
	sub, err := a.feed.Subscribe(r.Context(), req.filter)
	if err != nil {
		return err
	}
	defer sub.Close()
	s := newStream(w, a.heartbeat)
	s.header()
	s.id(sub.After())
	if err := s.flush(); err != nil || req.bounded && req.wait == 0 {
		return nil
	}
	var expired <-chan time.Time
	if req.bounded {
		t := time.NewTimer(req.wait)
		defer t.Stop()
		expired = t.C
	}
	a.stream(r.Context(), expired, s, sub, !auth.SeesPersonalData(r.Context()))
	return nil
}

// stream writes sub's events to s until the subscription or the request ends, or expired
// fires.
func (a *API) stream(ctx context.Context, expired <-chan time.Time, s *stream, sub *feed.Subscription, redact bool) {
	heartbeat := time.NewTicker(a.heartbeat)
	defer heartbeat.Stop()
	last := sub.After()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expired:
			return
		case <-heartbeat.C:
			s.comment("heartbeat")
			if s.flush() != nil {
				return
			}
			continue
		case e, ok := <-sub.Events():
			if !ok {
				a.ended(s, sub, last)
				return
			}
			last = s.event(e, redact)
		}
	drain: // what else waits goes out in the same flush
		for range drainBatch {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					a.ended(s, sub, last)
					return
				}
				last = s.event(e, redact)
			default:
				break drain
			}
		}
		if s.flush() != nil {
			return
		}
		heartbeat.Reset(a.heartbeat)
	}
}

// ended sends what is written of a stream whose subscription ended, and tells a subscriber
// dropped for falling behind why, and where to resume.
func (a *API) ended(s *stream, sub *feed.Subscription, last int64) {
	if errors.Is(sub.Err(), feed.ErrSlow) {
		s.named("dropped", map[string]string{
			"reason":        "slow",
			"message":       "this subscriber fell more than FEED_BUFFER events behind; subscribe again with Last-Event-ID to resume",
			"last_event_id": strconv.FormatInt(last, 10),
		})
	}
	_ = s.flush()
}

// stream writes Server-Sent Events, each write within a deadline of its own rather than the
// server's WriteTimeout, and without the server's ReadTimeout, which would end a long stream.
type stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	window time.Duration
	buf    bytes.Buffer
	enc    *json.Encoder
}

func newStream(w http.ResponseWriter, heartbeat time.Duration) *stream {
	s := &stream{w: w, rc: http.NewResponseController(w), window: heartbeat + writeWindow}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	return s
}

func (s *stream) header() {
	_ = s.rc.SetReadDeadline(time.Time{})
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies such as nginx pass each event on at once
	s.w.WriteHeader(http.StatusOK)
}

// id sets the client's last event id without an event.
func (s *stream) id(pos int64) {
	s.buf.WriteString("id: ")
	s.buf.WriteString(strconv.FormatInt(pos, 10))
	s.buf.WriteString("\n\n")
}

func (s *stream) comment(text string) {
	s.buf.WriteString(": ")
	s.buf.WriteString(text)
	s.buf.WriteString("\n\n")
}

// event writes e, with its emails and names redacted when redact is set, and returns its
// position. A type with a line break, which would end the field, is left out of the event
// field (the client sees a "message"); the data has it.
func (s *stream) event(e events.Envelope, redact bool) int64 {
	if redact {
		e.Data = domain.RedactPersonalData(e.Type, e.Data, auth.Redacted)
	}
	s.buf.WriteString("id: ")
	s.buf.WriteString(strconv.FormatInt(e.GlobalPosition, 10))
	s.buf.WriteByte('\n')
	if !strings.ContainsAny(e.Type, "\r\n") {
		s.buf.WriteString("event: ")
		s.buf.WriteString(e.Type)
		s.buf.WriteByte('\n')
	}
	s.data(e)
	return e.GlobalPosition
}

func (s *stream) named(name string, v any) {
	s.buf.WriteString("event: ")
	s.buf.WriteString(name)
	s.buf.WriteByte('\n')
	s.data(v)
}

// data writes v as one line of JSON, which has no line break, and ends the message.
func (s *stream) data(v any) {
	s.buf.WriteString("data: ")
	_ = s.enc.Encode(v) // ends with the line's \n
	s.buf.WriteByte('\n')
}

// flush sends what was written.
func (s *stream) flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.window))
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	s.buf.Reset()
	return s.rc.Flush()
}

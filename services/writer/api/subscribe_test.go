package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/feed"
)

// message is one Server-Sent Events message: its fields, or the comment it is.
type message struct {
	ID, Event, Data, Comment string
	HasID                    bool
}

// sse is a client's stream of GET /v1/subscribe.
type sse struct {
	resp *http.Response
	msgs chan message
}

// subscribe opens GET /v1/subscribe with query and header pairs and requires 200 and
// text/event-stream; the stream is closed when the test ends.
func (e *env) subscribe(tb testing.TB, query string, header ...string) *sse {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/subscribe"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /v1/subscribe%s: %s %s %s", query, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	s := &sse{resp: resp, msgs: make(chan message, 1024)}
	go readSSE(resp.Body, s.msgs)
	return s
}

// readSSE parses messages from r into out, which it closes at the end of the stream.
func readSSE(r io.Reader, out chan<- message) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var m message
	started := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if started {
				out <- m
			}
			m, started = message{}, false
			continue
		case strings.HasPrefix(line, ":"):
			m.Comment = strings.TrimSpace(line[1:])
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				m.ID, m.HasID = value, true
			case "event":
				m.Event = value
			case "data":
				m.Data = value
			}
		}
		started = true
	}
}

// next returns the next message, or fails the test after a while or at the end of the stream.
func (s *sse) next(tb testing.TB) message {
	tb.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			tb.Fatal("the stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		tb.Fatal("no message within 10 s")
	}
	return message{}
}

// nextEvent skips comments and returns the next message that is an event.
func (s *sse) nextEvent(tb testing.TB) message {
	tb.Helper()
	for {
		if m := s.next(tb); m.Data != "" {
			return m
		}
	}
}

// ends requires the stream to end within a while, and returns what came before the end.
func (s *sse) ends(tb testing.TB) []message {
	tb.Helper()
	var got []message
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-deadline:
			tb.Fatalf("the stream did not end; %d messages", len(got))
		}
	}
}

// A stream opens with the position it starts after and then carries, as they commit, the
// events its filter keeps, each as GET /v1/events shows it, with its position as id and its
// type as event.
func TestAPI_Subscribe(t *testing.T) {
	e := newEnv(t, func(c *setup) { c.api.Heartbeat = 100 * time.Millisecond })
	e.createUser(t)

	t.Run("FromNow", func(t *testing.T) {
		s := e.subscribe(t, "")
		first := s.next(t)
		var head allPage
		e.do(t, "GET", "/v1/events?limit=1000", nil).into(t, http.StatusOK, &head)
		if want := strconv.FormatInt(head.NextAfter, 10); !first.HasID || first.ID != want || first.Data != "" {
			t.Fatalf("the stream opens with %+v, want an id-only message %s", first, want)
		}
		user := e.createUser(t)
		got := s.nextEvent(t)
		var page allPage
		e.do(t, "GET", "/v1/events?after="+first.ID, nil).into(t, http.StatusOK, &page)
		if len(page.Events) != 1 {
			t.Fatalf("GET /v1/events after %s: %d events", first.ID, len(page.Events))
		}
		want, err := json.Marshal(page.Events[0])
		if err != nil {
			t.Fatal(err)
		}
		var ev envelope
		if err := json.Unmarshal([]byte(got.Data), &ev); err != nil {
			t.Fatalf("data %q: %v", got.Data, err)
		}
		same, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != strconv.FormatInt(page.Events[0].GlobalPosition, 10) || got.Event != "UserCreated" ||
			string(same) != string(want) || ev.StreamID != "user-"+user {
			t.Errorf("received id %s event %s data %s; want id %d, UserCreated, the event as GET /v1/events has it: %s",
				got.ID, got.Event, got.Data, page.Events[0].GlobalPosition, want)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		byType := e.subscribe(t, "?types=OrderCreated,ItemAdded")
		byCategory := e.subscribe(t, "?category=user")
		both := e.subscribe(t, "?types=UserCreated&category=order")
		order := e.createOrder(t) // UserCreated, OrderCreated
		e.do(t, "POST", "/v1/orders/"+order+"/items", pen).ok(t, http.StatusOK)
		e.createUser(t)
		for _, want := range []string{"OrderCreated", "ItemAdded"} {
			if got := byType.nextEvent(t); got.Event != want {
				t.Errorf("by type: %s, want %s", got.Event, want)
			}
		}
		for range 2 {
			if got := byCategory.nextEvent(t); got.Event != "UserCreated" {
				t.Errorf("by category: %s, want UserCreated", got.Event)
			}
		}
		for _, s := range []*sse{byType, byCategory, both} {
			for m := s.next(t); m.Comment != "heartbeat"; m = s.next(t) {
				if m.Data != "" {
					t.Errorf("received %s %s, which the filter does not keep", m.Event, m.Data)
				}
			}
		}
	})
	t.Run("Resume", func(t *testing.T) {
		all := e.subscribe(t, "?after=0&types=UserCreated")
		var ids []string
		for m := all.nextEvent(t); ; m = all.nextEvent(t) {
			ids = append(ids, m.ID)
			if len(ids) == 4 {
				break
			}
		}
		resumed := e.subscribe(t, "?after=0&types=UserCreated", "Last-Event-ID", ids[1])
		if m := resumed.next(t); m.ID != ids[1] {
			t.Errorf("resumed after %s, want %s", m.ID, ids[1])
		}
		for _, want := range ids[2:] {
			if got := resumed.nextEvent(t); got.ID != want {
				t.Errorf("resumed with %s, want %s", got.ID, want)
			}
		}
	})
	t.Run("Wait", func(t *testing.T) {
		start := time.Now()
		got := e.subscribe(t, "?wait=300ms").ends(t)
		if d := time.Since(start); d < 300*time.Millisecond || len(got) == 0 || !got[0].HasID {
			t.Errorf("a stream with wait=300ms ended after %v with %+v", d, got)
		}
		if got := e.subscribe(t, "?wait=0").ends(t); len(got) != 1 || !got[0].HasID {
			t.Errorf("a stream with wait=0 sent %+v, want its id alone", got)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct{ name, query, header, field string }{
			{"EmptyType", "?types=UserCreated,", "", "types"},
			{"TooManyTypes", "?types=" + strings.Repeat("A,", 20) + "A", "", "types"},
			{"NULType", "?types=%00", "", "types"},
			{"Category", "?category=Order", "", "category"},
			{"CategoryWithDash", "?category=order-1", "", "category"},
			{"NegativeAfter", "?after=-1", "", "after"},
			{"WaitTooLong", "?wait=31s", "", "wait"},
			{"WaitInMinutes", "?wait=1m", "", "wait"},
			{"Unknown", "?type=UserCreated", "", "type"},
			{"LastEventID", "", "abc", "Last-Event-ID"},
			{"EmptyLastEventID", "", " ", "Last-Event-ID"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var header []string
				if tc.header != "" {
					header = []string{"Last-Event-ID", tc.header}
				}
				if got := e.do(t, "GET", "/v1/subscribe"+tc.query, nil, header...).fail(t, http.StatusBadRequest, httpx.CodeInvalidRequest)["field"]; got != tc.field {
					t.Errorf("field %v, want %s", got, tc.field)
				}
			})
		}
	})
}

// Beyond FEED_MAX_SUBSCRIBERS a subscription is refused with 503 and Retry-After, until one
// ends.
func TestAPI_SubscribeTooMany(t *testing.T) {
	e := newEnv(t, func(c *setup) { c.feed.MaxSubscribers = 1 })
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/subscribe", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	refused := e.do(t, "GET", "/v1/subscribe", nil)
	refused.fail(t, http.StatusServiceUnavailable, "unavailable")
	if refused.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for e.do(t, "GET", "/v1/subscribe?wait=0", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("still refused after the first subscriber left")
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// A long stream outlives the server's read and write timeouts: each write has a deadline of
// its own.
func TestAPI_SubscribeOutlivesTimeouts(t *testing.T) {
	e := newEnv(t, func(c *setup) { c.api.Heartbeat = 50 * time.Millisecond })
	srv := httptest.NewUnstartedServer(httpx.Middleware(e.router, nil, nil))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	s := (&env{url: srv.URL}).subscribe(t, "")
	start := time.Now()
	for beats := 0; time.Since(start) < time.Second; {
		if m := s.next(t); m.Comment == "heartbeat" {
			beats++
		}
	}
	user := e.createUser(t)
	if m := s.nextEvent(t); !strings.Contains(m.Data, user) {
		t.Errorf("after a second: %+v, want the new user's event", m)
	}
}

// A subscriber that stops reading is dropped once FEED_BUFFER events wait for it: it then reads
// what was sent before, and a last event dropped that says where to resume. The writer's memory
// does not grow with what it could not send.
func TestAPI_SubscribeSlowClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *setup) { c.feed.Buffer, c.feed.Metrics = 16, feed.NewMetrics(reg) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/subscribe", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()

	// 24 MiB of events, far more than the sockets' buffers hold, while the client reads
	// nothing: the writer's writes block, and the subscriber's buffer fills.
	const total, size = 384, 64 << 10
	data, err := json.Marshal(map[string]string{"blob": strings.Repeat("x", size)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range total / 16 {
		batch := make([]events.Event, 16)
		for j := range batch {
			batch[j] = events.Event{Type: "BlobAdded", Data: data}
		}
		if _, err := e.store.Append(ctx, fmt.Sprintf("blob-%d", i), events.NoStream(), batch, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for value(t, reg, "annals_feed_dropped_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber that reads nothing was not dropped")
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	if grown := int64(heap()) - int64(before); grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB while %d MiB of events could not be sent", grown>>20, total*size>>20)
	}

	msgs := make(chan message, 1024)
	go readSSE(resp.Body, msgs)
	var got []message
	for m := range msgs {
		got = append(got, m)
	}
	if len(got) < 2 {
		t.Fatalf("received %d messages", len(got))
	}
	last, evs := got[len(got)-1], got[1:len(got)-1]
	var dropped struct {
		Reason      string `json:"reason"`
		Message     string `json:"message"`
		LastEventID string `json:"last_event_id"`
	}
	if err := json.Unmarshal([]byte(last.Data), &dropped); err != nil || last.Event != "dropped" || dropped.Reason != "slow" ||
		len(evs) == 0 || dropped.LastEventID != evs[len(evs)-1].ID || last.HasID {
		t.Fatalf("the stream ended with %+v after %d events; want event dropped naming the last id", last, len(evs))
	}
	for i, m := range evs {
		if m.Event != "BlobAdded" || m.ID != strconv.Itoa(i+1) {
			t.Fatalf("event %d: id %s %s, want %d BlobAdded", i, m.ID, m.Event, i+1)
		}
	}
	if len(evs) >= total {
		t.Errorf("received all %d events: the subscriber was not behind", len(evs))
	}
	t.Logf("received %d of %d events, then dropped", len(evs), total)
}

// value gathers the value of the metric of that name from reg.
func value(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	tb.Fatalf("no metric %s", name)
	return 0
}

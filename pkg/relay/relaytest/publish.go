package relaytest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// observe calls fn with a session of the outbox under a lock key no relay contends for, so
// that the suite reads the outbox's figures beside a running relay.
func (e *env) observe(t *testing.T, fn func(s outbox.Session)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	s, err := e.Outbox.Lead(ctx, e.lockKey+1, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("lead an observer session: %v", err)
	}
	defer s.Close()
	fn(s)
}

// backlog measures the outbox's backlog.
func (e *env) backlog(t *testing.T) outbox.Backlog {
	t.Helper()
	var b outbox.Backlog
	e.observe(t, func(s outbox.Session) {
		var err error
		if b, err = s.Backlog(context.Background()); err != nil {
			t.Fatalf("backlog: %v", err)
		}
	})
	return b
}

// awaitDrained waits until the outbox holds no append.
func (e *env) awaitDrained(t *testing.T) {
	t.Helper()
	var b outbox.Backlog
	waitFor(t, "an empty outbox", func() bool {
		b = e.backlog(t)
		return b.Appends == 0
	})
	if b.HeldStreams != 0 || b.HeldAppends != 0 || b.OldestAppend != 0 {
		t.Errorf("the backlog of an empty outbox: %+v", b)
	}
}

// testPublishesEveryEvent: every event of concurrent appenders on many streams is published
// once, each stream's in order, each record naming its stored event; nothing else is, and
// the outbox is empty afterwards; the store's statistics count every event once.
func testPublishesEveryEvent(t *testing.T, e *env) {
	streams, rounds := 40, 4
	if e.short() {
		streams = 10
	}
	e.start(t, nil, relay.Config{})
	var mu sync.Mutex
	want := map[string]int64{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < streams; i += 4 {
				stream := fmt.Sprintf("order-%d", i)
				if i%2 == 0 {
					stream = fmt.Sprintf("user-%d", i)
				}
				for j := range rounds {
					n := 1 + (i+j)%5
					evs := newEvents(n, "Something")
					for k := range evs {
						evs[k].Metadata = map[string]string{"user_agent": "test"}
					}
					if _, err := e.Store.Append(context.Background(), stream, events.Any(), evs, events.AppendOptions{CorrelationID: "corr", CausationID: "cause"}); err != nil {
						t.Errorf("append to %s: %v", stream, err)
						return
					}
					mu.Lock()
					want[stream] += int64(n)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	recs := e.published(t)
	if dups := checkOrderAll(t, recs, want); dups != 0 {
		t.Errorf("%d duplicates with one relay in steady state", dups)
	}

	stored := map[string][]events.Envelope{}
	for s := range want {
		envs, err := e.Store.ReadStream(context.Background(), s, 0, -1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		stored[s] = envs
	}
	for _, r := range recs {
		envs := stored[r.Stream]
		if r.Version < 0 || r.Version >= int64(len(envs)) {
			continue // checkOrderAll said so
		}
		ev := envs[r.Version]
		want := map[string]string{
			kafkawire.HeaderEventID: ev.EventID.String(), kafkawire.HeaderEventType: "Something",
			kafkawire.HeaderGlobalPosition: strconv.FormatInt(ev.GlobalPosition, 10),
			kafkawire.HeaderCorrelationID:  "corr", kafkawire.HeaderCausationID: "cause",
			kafkawire.HeaderRecordedAt:  ev.RecordedAt.Format(time.RFC3339Nano),
			kafkawire.HeaderContentType: "application/json", kafkawire.HeaderFingerprint: "000000000000002a",
			kafkawire.HeaderMetadata: `{"user_agent":"test"}`,
		}
		for k, v := range want {
			if r.Headers[k] != v {
				t.Errorf("%s@%d: header %s = %q, want %q", r.Stream, r.Version, k, r.Headers[k], v)
			}
		}
		if t.Failed() {
			return
		}
	}
	st, err := e.Store.Stats(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalEvents != int64(total(want)) || st.TotalStreams != int64(streams) {
		t.Errorf("stats after publishing = %d events, %d streams; want %d, %d (every event counted once)", st.TotalEvents, st.TotalStreams, total(want), streams)
	}
}

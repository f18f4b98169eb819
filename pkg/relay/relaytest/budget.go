package relaytest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/relay"
)

// window is one read of the outbox: its appends and the bytes of their events' data.
type window struct {
	appends int
	data    int
}

// spyOutbox records every window the relay reads, and checks each append's size.
type spyOutbox struct {
	relay.Outbox
	t       *testing.T
	mu      sync.Mutex
	windows []window
}

func (s *spyOutbox) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	sess, err := s.Outbox.Lead(ctx, key, poll)
	if err != nil {
		return nil, err
	}
	return &spySession{Session: sess, spy: s}, nil
}

type spySession struct {
	outbox.Session
	spy *spyOutbox
}

func (s *spySession) Pending(ctx context.Context, maxEvents int, maxBytes int64) ([]outbox.Append, error) {
	batch, err := s.Session.Pending(ctx, maxEvents, maxBytes)
	n := 0
	for _, a := range batch {
		counted := 0
		for _, e := range a.Events {
			md, _ := json.Marshal(e.Metadata)
			n += len(e.Data)
			counted += len(e.Data) + len(md)
		}
		if a.Bytes != int64(counted) {
			s.spy.t.Errorf("%s@%d: %d bytes counted, want %d (its events' data and metadata as JSON)", a.StreamID, a.FirstVersion, a.Bytes, counted)
		}
	}
	if len(batch) > 0 {
		s.spy.mu.Lock()
		s.spy.windows = append(s.spy.windows, window{appends: len(batch), data: n})
		s.spy.mu.Unlock()
	}
	return batch, err
}

// testReadByteBudget: however large the backlog, no window the relay reads holds more event
// data than its byte budget, except one holding a single append larger than the budget
// alone; every event, the large one too, is still published once, in order.
func testReadByteBudget(t *testing.T, e *env) {
	const budget = 256 << 10
	streams, appends := 30, 10
	if e.short() {
		appends = 4 // still some 4 budgets of data
	}
	blob := strings.Repeat("y", 8000)
	want := map[string]int64{}
	for a := range appends {
		for s := range streams {
			stream := fmt.Sprintf("order-%02d", s)
			e.appendEvents(t, stream, events.Event{Type: "Something", Data: []byte(`{"blob":"` + blob + `"}`)})
			want[stream]++
			if a == appends/2 && s == streams/2 {
				e.appendEvents(t, "order-large", events.Event{Type: "Something", Data: []byte(`{"blob":"` + strings.Repeat("z", budget+1000) + `"}`)})
				want["order-large"]++
			}
		}
	}
	spy := &spyOutbox{Outbox: e.Outbox, t: t}
	r := e.startOn(t, spy, nil, relay.Config{MaxReadBytes: budget})
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	r.stop(t)
	if dups := checkOrderAll(t, e.published(t), want); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	large := 0
	for i, w := range spy.windows {
		if w.data > budget {
			if w.appends != 1 {
				t.Errorf("window %d of %d held %d bytes of event data in %d appends, over the budget of %d", i+1, len(spy.windows), w.data, w.appends, budget)
			}
			large++
		}
	}
	if large != 1 {
		t.Errorf("%d windows over the budget, want 1: the large append's alone", large)
	}
}

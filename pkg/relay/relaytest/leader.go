package relaytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/relay"
)

// testLead: one session at a time leads for a lock key; another Lead waits, and returns its
// context's error when that ends first; once the leader closes its session, the next leads.
func testLead(t *testing.T, e *env) {
	ctx := context.Background()
	first, err := e.Outbox.Lead(ctx, e.lockKey, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("lead: %v", err)
	}
	if first.Lost() {
		t.Errorf("a session that just led says it lost its lock")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if s, err := e.Outbox.Lead(short, e.lockKey, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if s != nil {
			s.Close()
		}
		t.Errorf("a second Lead while the first session leads: %v, want the context's deadline", err)
	}
	first.Close()
	long, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	second, err := e.Outbox.Lead(long, e.lockKey, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("lead after the first session closed: %v", err)
	}
	second.Close()
}

// leaders counts the sessions of an outbox that lead at once.
type leaders struct {
	relay.Outbox
	now, most atomic.Int64
}

func (l *leaders) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	s, err := l.Outbox.Lead(ctx, key, poll)
	if err != nil {
		return nil, err
	}
	n := l.now.Add(1)
	for m := l.most.Load(); n > m && !l.most.CompareAndSwap(m, n); m = l.most.Load() {
	}
	return &countedSession{Session: s, l: l}, nil
}

type countedSession struct {
	outbox.Session
	l    *leaders
	once sync.Once
}

// Close counts the session out before it lets the lock go, so that the next leader is never
// counted while this one still is.
func (s *countedSession) Close() {
	s.once.Do(func() { s.l.now.Add(-1) })
	s.Session.Close()
}

// appendConcurrently appends perStream events, five an append, to each of the streams from
// four writers at once, and adds them to want.
func (e *env) appendConcurrently(t *testing.T, streams []string, perStream int, want map[string]int64) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(streams); i += 4 {
				for j := 0; j < perStream; j += 5 {
					evs := newEvents(min(5, perStream-j), "Something")
					if _, err := e.Store.Append(context.Background(), streams[i], events.Any(), evs, events.AppendOptions{}); err != nil {
						t.Errorf("append to %s: %v", streams[i], err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range streams {
		want[s] += int64(perStream)
	}
}

// testOnePublisherAtATime: two relays share the outbox while writers append; one session
// leads at a time, every event is published once, in order; when the leader's context ends
// the other relay takes over, with nothing lost and nothing repeated.
func testOnePublisherAtATime(t *testing.T, e *env) {
	n, perStream := 500, 20
	if testing.Short() {
		n = 50
	}
	var streams []string
	for i := range n {
		streams = append(streams, fmt.Sprintf("order-%d", i))
	}
	spy := &leaders{Outbox: e.Outbox}
	relays := []*running{e.startOn(t, spy, nil, relay.Config{}), e.startOn(t, spy, nil, relay.Config{})}
	want := map[string]int64{}
	e.appendConcurrently(t, streams, perStream, want)
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	if dups := checkOrder(t, e.published(t), want); dups != 0 {
		t.Errorf("%d duplicates with two relays", dups)
	}

	var leader, other *running
	waitFor(t, "one relay publishing, the other standing by", func() bool {
		a, b := relays[0].Health().State, relays[1].Health().State
		switch {
		case a == relay.Publishing && b == relay.Standby:
			leader, other = relays[0], relays[1]
		case b == relay.Publishing && a == relay.Standby:
			leader, other = relays[1], relays[0]
		}
		return leader != nil
	})
	leader.stop(t)
	e.appendConcurrently(t, streams[:n/2], 5, want)
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	if dups := checkOrder(t, e.published(t), want); dups != 0 {
		t.Errorf("%d duplicates after the leader stopped between rounds", dups)
	}
	if h := other.Health(); h.State != relay.Publishing {
		t.Errorf("the relay that took over is %s (%s), want publishing", h.State, h.Error)
	}
	if most := spy.most.Load(); most != 1 {
		t.Errorf("%d sessions led at once, want 1", most)
	}
}

// testAbruptStop: a relay whose context is cancelled mid-drain, without waiting for it to
// return, and a new relay started at once: nothing is lost, and only what the first one sent
// without settling is sent again, so that each stream steps back at most once.
func testAbruptStop(t *testing.T, e *env) {
	n, appends := 50, 10
	if testing.Short() {
		n, appends = 20, 5
	}
	const per, batch = 3, 60
	want := map[string]int64{}
	for range appends {
		for i := range n {
			stream := fmt.Sprintf("order-%d", i)
			e.append(t, stream, per, "Something")
			want[stream] += per
		}
	}
	cfg := relay.Config{MaxBatchEvents: batch}
	first := e.start(t, nil, cfg)
	before := len(e.awaitRecords(t, 1))
	first.cancel() // without waiting for it to return
	e.start(t, nil, cfg)
	recs := e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	recs = e.published(t)
	t.Logf("%d of %d records published before the cut", before, total(want))
	dups := checkOrder(t, recs, want)
	for s, vs := range byStream(recs) {
		back := 0
		for i := 1; i < len(vs); i++ {
			if vs[i] <= vs[i-1] {
				back++
			}
		}
		if back > 1 {
			t.Errorf("%s stepped back %d times: %v; a cut repeats at most once", s, back, vs)
		}
	}
	if limit := batch + per; dups > limit {
		t.Errorf("%d duplicates, more than one read of the outbox (%d events)", dups, limit)
	}
	t.Logf("%d duplicates at the cut", dups)
}

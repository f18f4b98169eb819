package relaytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// four writers at once, and adds them to want. It may run on a goroutine of its own: it
// reports a failed append with t.Errorf.
func (e *env) appendConcurrently(t *testing.T, streams []string, perStream int, want map[string]int64) {
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
	for _, s := range streams {
		want[s] += int64(perStream)
	}
}

// checkCut: a cut (a relay stopped, another taking over) repeats at most what the stopped
// relay had sent without settling: each stream steps back at most once, and at most limit
// events are repeated in all (dups, as checkOrderAll counted them).
func checkCut(t *testing.T, recs []Record, dups, limit int) {
	t.Helper()
	for s, vs := range ByStream(recs) {
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
	if dups > limit {
		t.Errorf("%d duplicates, more than one read of the outbox (%d events)", dups, limit)
	}
	t.Logf("%d duplicates at the cut", dups)
}

// testOnePublisherAtATime: two relays share the outbox while writers append; one session
// leads at a time, every event is published once, in order. When the leader's context ends
// while writers append, the other relay takes over with nothing lost, repeating at most what
// the leader had sent without settling.
func testOnePublisherAtATime(t *testing.T, e *env) {
	n, perStream := 500, 20
	if e.short() {
		n = 50
	}
	var streams []string
	for i := range n {
		streams = append(streams, fmt.Sprintf("order-%d", i))
	}
	spy := &leaders{Outbox: e.Outbox}
	const batch = 500
	cfg := relay.Config{MaxBatchEvents: batch}
	relays := []*running{e.startOn(t, spy, nil, cfg), e.startOn(t, spy, nil, cfg)}
	want := map[string]int64{}
	e.appendConcurrently(t, streams, perStream, want)
	if t.Failed() {
		t.FailNow()
	}
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	if dups := checkOrderAll(t, e.published(t), want); dups != 0 {
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
	// The leader stops once it has published some of what the writers append meanwhile.
	before := total(want)
	more := map[string]int64{}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		e.appendConcurrently(t, streams, 10, more)
	}()
	e.awaitRecords(t, before+1)
	leader.stop(t)
	<-wrote
	if t.Failed() {
		t.FailNow()
	}
	for s, n := range more {
		want[s] += n
	}
	e.awaitRecords(t, total(want))
	e.awaitDrained(t)
	recs := e.published(t)
	checkCut(t, recs, checkOrderAll(t, recs, want), batch+5)
	if h := other.Health(); h.State != relay.Publishing {
		t.Errorf("the relay that took over is %s (%s), want publishing", h.State, h.Error)
	}
	if most := spy.most.Load(); most != 1 {
		t.Errorf("%d sessions led at once, want 1", most)
	}
}

// cutOutbox cancels the relay that reads it in the middle of a round: as the relay settles
// its cutAt-th round, once it has sent the round's records, and before the round is settled.
type cutOutbox struct {
	relay.Outbox
	cutAt  int64
	cancel context.CancelFunc
	rounds atomic.Int64
	cut    chan struct{}
}

func (c *cutOutbox) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	s, err := c.Outbox.Lead(ctx, key, poll)
	if err != nil {
		return nil, err
	}
	return &cutSession{Session: s, c: c}, nil
}

type cutSession struct {
	outbox.Session
	c *cutOutbox
}

func (s *cutSession) Settle(ctx context.Context, settled []outbox.Settlement) error {
	if len(settled) > 0 && s.c.rounds.Add(1) == s.c.cutAt {
		s.c.cancel()
		close(s.c.cut)
	}
	return s.Session.Settle(ctx, settled)
}

// testAbruptStop: a relay cancelled mid-drain (between sending a round's records and settling
// them, or at any moment), without waiting for it to return, and a new relay started at once:
// nothing is lost, and only what the first one sent without settling is sent again.
func testAbruptStop(t *testing.T, e *env) {
	n, appends := 50, 10
	if e.short() {
		n, appends = 20, 5
	}
	const per, batch = 3, 60
	for _, c := range []struct {
		name string
		cut  func(t *testing.T, cfg relay.Config)
	}{
		{"BeforeSettling", func(t *testing.T, cfg relay.Config) {
			ctx, cancel := context.WithCancel(context.Background())
			o := &cutOutbox{Outbox: e.Outbox, cutAt: 3, cancel: cancel, cut: make(chan struct{})}
			e.startWith(t, ctx, o, nil, cfg)
			select {
			case <-o.cut:
			case <-time.After(within):
				t.Fatalf("the relay did not settle %d rounds within %s", o.cutAt, within)
			}
		}},
		{"AnyMoment", func(t *testing.T, cfg relay.Config) {
			first := e.start(t, nil, cfg)
			e.awaitRecords(t, len(e.published(t))+1)
			first.cancel()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.published(t))
			want := map[string]int64{}
			for range appends {
				for i := range n {
					stream := fmt.Sprintf("order-%s-%d", strings.ToLower(c.name), i)
					e.append(t, stream, per, "Something")
					want[stream] += per
				}
			}
			cfg := relay.Config{MaxBatchEvents: batch}
			c.cut(t, cfg) // without waiting for the relay to return
			e.start(t, nil, cfg)
			e.awaitRecords(t, before+total(want))
			e.awaitDrained(t)
			var recs []Record
			for _, r := range e.published(t) {
				if _, ok := want[r.Stream]; ok {
					recs = append(recs, r)
				}
			}
			checkCut(t, recs, checkOrderAll(t, recs, want), batch+per)
		})
	}
}

//go:build stack

package stack_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// TestRelay_HoldsAcrossSIGKILL: under load, streams with an event the relay cannot publish (a
// type without a schema in the catalog) are held while `annals relay` is killed with SIGKILL
// and another takes over: no event of a held stream after the held one ever reaches Kafka,
// every other stream arrives whole and in order, and the held streams are listed with the
// reason. `annals outbox skip` then releases each, and the rest of its events arrive in order.
// ANNALS_FAULT_ROUNDS sets the rounds (make test-faults runs 5).
func TestRelay_HoldsAcrossSIGKILL(t *testing.T) {
	bin := buildAnnals(t)
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { holdsRound(t, bin) })
	}
}

func holdsRound(t *testing.T, bin string) {
	e := newFaultEnv(t)
	ctx := context.Background()
	store := postgres.New(e.pool, postgres.Options{Notify: true})
	c := collect(t, e.brokers, e.eventTopics())
	relay1 := startRelayProcess(t, bin, e.vars, "relay-1", fmt.Sprintf("annals-relay-1-%d", time.Now().UnixNano()))

	// Held streams: a valid event, one without a schema, then valid ones appended during the
	// load and the relay's death.
	const heldStreams, heldEvents = 10, 12
	run := fmt.Sprint(time.Now().UnixNano())
	var held []string
	for i := range heldStreams {
		held = append(held, fmt.Sprintf("order-held-%s-%d", run, i))
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := range heldEvents {
			for _, s := range held {
				ev := itemEvent(v)
				if v == 1 {
					ev = events.Event{Type: "OrderGiftWrapped", Data: []byte(`{"paper":"red"}`)}
				}
				if _, err := store.Append(ctx, s, events.Any(), []events.Event{ev}, events.AppendOptions{}); err != nil {
					t.Errorf("append to %s: %v", s, err)
					return
				}
			}
			time.Sleep(100 * time.Millisecond) // pacing, spread over the relay's death
		}
	})
	a := load{streams: 50, events: 2000, writers: 4, perSecond: 1000}.start(t, store)
	waitFor(t, time.Minute, "half the load appended", func() bool { return a.count() >= 1000 })
	relay1.kill()
	startRelayProcess(t, bin, e.vars, "relay-2", fmt.Sprintf("annals-relay-2-%d", time.Now().UnixNano()))
	<-a.done
	wg.Wait()

	want := a.snapshot()
	for _, s := range held {
		want[s] = 1 // version 0 only
	}
	c.waitAll(t, want, 2*time.Minute)
	waitFor(t, time.Minute, "only the held streams' appends in the outbox", func() bool {
		return outboxEvents(t, e.pool) == heldStreams*(heldEvents-1)
	})
	o := postgres.NewOutbox(e.pool)
	holds, err := o.Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, h := range holds {
		if h.FirstVersion != 1 || !strings.Contains(h.Reason, "OrderGiftWrapped") || h.Waiting != heldEvents-1 {
			t.Errorf("hold %+v, want version 1 held for OrderGiftWrapped with %d appends waiting", h, heldEvents-1)
		}
		listed = append(listed, h.StreamID)
	}
	slices.Sort(listed)
	if fmt.Sprint(listed) != fmt.Sprint(held) {
		t.Errorf("held streams %v, want %v", listed, held)
	}

	// The operator skips each held append; the rest of each stream follows, in order.
	for _, s := range held {
		p := startProcess(t, bin, []string{"outbox", "skip", s, "-version", "1", "-reason", "gift wrapping withdrawn", "-by", "fault-test"}, e.vars, "skip-"+s)
		<-p.done
		if p.err != nil {
			t.Fatalf("annals outbox skip %s: %v\n%s", s, p.err, p.logText(t))
		}
	}
	for _, s := range held {
		want[s] = heldEvents
	}
	total := 0
	for _, n := range want {
		total += int(n)
	}
	total -= heldStreams // the skipped versions never arrive
	waitFor(t, 2*time.Minute, "every event but the skipped ones", func() bool { return c.unique() >= total })
	waitFor(t, time.Minute, "the outbox to empty", func() bool { return outboxEvents(t, e.pool) == 0 })
	recs := c.records()
	got := map[string][]int64{}
	for _, r := range recs {
		if slices.Contains(held, r.stream) && !slices.Contains(got[r.stream], r.version) {
			got[r.stream] = append(got[r.stream], r.version)
		}
	}
	wantHeld := []int64{0}
	for v := int64(2); v < heldEvents; v++ {
		wantHeld = append(wantHeld, v)
	}
	for _, s := range held {
		if fmt.Sprint(got[s]) != fmt.Sprint(wantHeld) {
			t.Errorf("%s: first arrivals %v, want %v", s, got[s], wantHeld)
		}
	}
	for s := range want {
		if slices.Contains(held, s) {
			delete(want, s)
		}
	}
	var others []consumed
	for _, r := range recs {
		if !slices.Contains(held, r.stream) {
			others = append(others, r)
		}
	}
	dups := checkDelivery(t, others, want)
	t.Logf("%d events in %d streams and %d held streams; %d duplicates after the SIGKILL", len(recs), len(want), heldStreams, dups)
}

package relaytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/relay"
)

// holds describes the outbox's held streams, sorted.
func (e *env) holds(t *testing.T) string {
	t.Helper()
	hs, err := e.Operator.Holds(context.Background())
	if err != nil {
		t.Fatalf("holds: %v", err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s@%d..%d (%s, %d waiting): %s", h.StreamID, h.FirstVersion, h.LastVersion, h.Category, h.Waiting, h.Reason))
		if h.HeldAt.IsZero() {
			t.Errorf("%s: no time of hold", h.StreamID)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// awaitHolds waits until the outbox's holds are as described.
func (e *env) awaitHolds(t *testing.T, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(within)
	for got = e.holds(t); got != want; got = e.holds(t) {
		if time.Now().After(deadline) {
			t.Fatalf("holds:\n got %s\nwant %s", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric reads a counter's or gauge's value from reg; labels pick one series.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() != labels[i+1] {
						continue series
					}
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// testHeldStream: an append the encoder refuses stays in the outbox and holds its stream's
// later appends, those appended meanwhile too, while every other stream is published; the
// held streams are listed with the reason and counted. A retry once the encoder takes the
// event publishes the stream in order; a skip, which needs who and why, gives up exactly the
// named append, records them, and publishes the appends behind it.
func testHeldStream(t *testing.T, e *env) {
	ctx := context.Background()
	e.append(t, "order-p", 1, "Something")
	e.append(t, "order-p", 1, poison)
	e.append(t, "order-p", 1, "Something")
	e.append(t, "order-q", 1, poison)
	e.append(t, "order-q", 1, "Something")
	want := map[string]int64{}
	for i := range 5 {
		e.append(t, fmt.Sprintf("order-ok%d", i), 2, "Something")
		e.append(t, fmt.Sprintf("user-ok%d", i), 1, "Something")
		want[fmt.Sprintf("order-ok%d", i)], want[fmt.Sprintf("user-ok%d", i)] = 2, 1
	}
	enc := &gatedEncoder{}
	reg := prometheus.NewPedanticRegistry()
	e.start(t, enc, relay.Config{Metrics: relay.NewMetrics(reg), StatsInterval: 50 * time.Millisecond})
	e.awaitHolds(t, "order-p@1..1 (order, 2 waiting): no schema for event type Poison; order-q@0..0 (order, 2 waiting): no schema for event type Poison")
	e.awaitRecords(t, total(want)+1)
	got := ByStream(e.published(t))
	if fmt.Sprint(got["order-p"]) != "[0]" || len(got["order-q"]) != 0 {
		t.Fatalf("published order-p %v and order-q %v; want order-p [0] and nothing of order-q: an append that cannot be published holds the appends after it",
			got["order-p"], got["order-q"])
	}
	for s, n := range want {
		if int64(len(got[s])) != n {
			t.Errorf("%s: %d events published, want %d", s, len(got[s]), n)
		}
	}
	waitFor(t, "the held streams' gauge", func() bool { return metric(t, reg, "annals_relay_held_streams") == 2 })
	if n := metric(t, reg, "annals_relay_held_appends_total", "cause", "unencodable"); n != 2 {
		t.Errorf("held appends (unencodable) = %v, want 2", n)
	}
	if n := metric(t, reg, "annals_relay_held_appends_total", "cause", "behind"); n != 2 {
		t.Errorf("held appends (behind) = %v, want 2", n)
	}
	// The figures come from the relay's periodic look at the outbox: the one after the last
	// append behind a hold was settled says the outbox has nothing unpublished but held.
	waitFor(t, "no unpublished append but the held ones", func() bool {
		return metric(t, reg, "annals_relay_oldest_unpublished_seconds") == 0
	})
	if b := e.backlog(t); b.Appends != 4 || b.HeldStreams != 2 || b.HeldAppends != 4 || b.OldestAppend != 0 {
		t.Errorf("backlog = %+v, want 4 appends, all held, in 2 streams", b)
	}

	// An append to a held stream waits behind the hold too.
	e.append(t, "order-p", 1, "Something")
	waitFor(t, "order-p's new append held", func() bool {
		return metric(t, reg, "annals_relay_held_appends_total", "cause", "behind") == 3
	})
	if got := e.holds(t); !strings.HasPrefix(got, "order-p@1..1 (order, 3 waiting)") {
		t.Errorf("holds after an append to order-p: %s", got)
	}

	if _, err := e.Operator.Retry(ctx, "order-ok0"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("retry of a stream that is not held: %v, want ErrNotHeld", err)
	}
	if _, err := e.Operator.Skip(ctx, "order-q", 1, "ops", "wrong version"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("skip of order-q at a version it is not held at: %v, want ErrNotHeld", err)
	}
	for _, byWhy := range [][2]string{{"", "no one"}, {"ops", ""}} {
		if _, err := e.Operator.Skip(ctx, "order-q", 0, byWhy[0], byWhy[1]); err == nil {
			t.Errorf("skip by %q because %q: no error, want one (a skip needs who and why)", byWhy[0], byWhy[1])
		}
	}
	if got := e.holds(t); !strings.Contains(got, "order-q@0..0 (order, 2 waiting)") {
		t.Fatalf("holds after skips refused: %s", got)
	}

	// The schema is deployed; the operator retries order-p.
	enc.deployed.Store(true)
	h, err := e.Operator.Retry(ctx, "order-p")
	if err != nil || h.StreamID != "order-p" || h.FirstVersion != 1 {
		t.Fatalf("retry order-p = %+v, %v", h, err)
	}
	waitFor(t, "order-p published", func() bool { return len(ByStream(e.published(t))["order-p"]) >= 4 })
	if got := ByStream(e.published(t))["order-p"]; fmt.Sprint(got) != "[0 1 2 3]" {
		t.Errorf("order-p published %v after the retry, want [0 1 2 3]", got)
	}

	// The operator skips order-q's held append deliberately.
	if h, err := e.Operator.Skip(ctx, "order-q", 0, "ops@example.com", "written by mistake"); err != nil || h.Reason != "no schema for event type Poison" {
		t.Fatalf("skip order-q = %+v, %v", h, err)
	}
	waitFor(t, "order-q's append behind the skipped one published", func() bool { return len(ByStream(e.published(t))["order-q"]) >= 1 })
	e.awaitDrained(t)
	if got := ByStream(e.published(t))["order-q"]; fmt.Sprint(got) != "[1]" {
		t.Errorf("order-q published %v after the skip, want [1]", got)
	}
	if e.Skipped != nil {
		skipped, err := e.Skipped(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []SkippedAppend{{StreamID: "order-q", FirstVersion: 0, Reason: "no schema for event type Poison", By: "ops@example.com", Why: "written by mistake"}}
		if !slices.Equal(skipped, want) {
			t.Errorf("skipped = %+v, want %+v", skipped, want)
		}
	}
	if got := e.holds(t); got != "" {
		t.Errorf("holds after the retry and the skip: %s", got)
	}
	waitFor(t, "the held streams' gauge back to 0", func() bool { return metric(t, reg, "annals_relay_held_streams") == 0 })
	st, err := e.Store.Stats(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalEvents != 21 {
		t.Errorf("stats count %d events, want 21 (every appended event once, the skipped one included)", st.TotalEvents)
	}
	want["order-p"], want["order-q"] = 4, 1
	for s, vs := range ByStream(e.published(t)) {
		if int64(len(vs)) != want[s] {
			t.Errorf("%s: published %v, want %d events once each", s, vs, want[s])
		}
	}
}

// testHoldsWholeAppend: an append with one event that cannot be published is held whole; none
// of its events is sent, and the stream's later append waits behind it.
func testHoldsWholeAppend(t *testing.T, e *env) {
	mixed := []events.Event{{Type: "Something", Data: []byte(`{}`)}, {Type: poison, Data: []byte(`{}`)}}
	e.appendEvents(t, "order-x", mixed...)
	e.append(t, "order-x", 1, "Something")
	e.append(t, "order-y", 1, "Something")
	e.start(t, &gatedEncoder{}, relay.Config{})
	recs := e.awaitRecords(t, 1)
	if recs[0].Stream != "order-y" {
		t.Errorf("first record = %s@%d, want order-y@0", recs[0].Stream, recs[0].Version)
	}
	e.awaitHolds(t, "order-x@0..1 (order, 2 waiting): no schema for event type Poison")
	waitFor(t, "order-x's two appends held", func() bool {
		b := e.backlog(t)
		return b.Appends == 2 && b.HeldAppends == 2
	})
	if got := ByStream(e.published(t)); len(got["order-x"]) != 0 || fmt.Sprint(got["order-y"]) != "[0]" {
		t.Errorf("published %v, want order-y [0] and nothing of order-x", got)
	}
}

// testHoldsInALargeRound: in a round large enough to be encoded on several goroutines, the
// appends that cannot be published hold their streams, each with the reason, and every other
// append is published once, in per-stream order, up to the held ones; only the held streams'
// appends stay in the outbox.
func testHoldsInALargeRound(t *testing.T, e *env) {
	const streams, appends = 40, 12
	poisoned := map[string]int{} // stream -> the version held
	for a := range appends {
		for s := range streams {
			stream := fmt.Sprintf("order-%02d", s)
			if s%7 == 3 && a == s%appends {
				e.append(t, stream, 1, poison)
				poisoned[stream] = a
				continue
			}
			e.append(t, stream, 1, "Something")
		}
	}
	total, waiting := 0, int64(0)
	for s := range streams {
		if p, ok := poisoned[fmt.Sprintf("order-%02d", s)]; ok {
			total += p
			waiting += int64(appends - p)
		} else {
			total += appends
		}
	}
	e.start(t, &gatedEncoder{}, relay.Config{}) // the whole outbox, 480 events, is one round
	e.awaitRecords(t, total)
	waitFor(t, "only the held streams' appends in the outbox", func() bool {
		b := e.backlog(t)
		return b.Appends == waiting && b.HeldAppends == waiting && b.HeldStreams == int64(len(poisoned))
	})
	seen := ByStream(e.published(t))
	for s := range streams {
		stream := fmt.Sprintf("order-%02d", s)
		var want []int64
		for v := range appends {
			if p, ok := poisoned[stream]; ok && v >= p {
				break
			}
			want = append(want, int64(v))
		}
		if fmt.Sprint(seen[stream]) != fmt.Sprint(want) {
			t.Errorf("%s: published %v, want %v", stream, seen[stream], want)
		}
	}
	hs, err := e.Operator.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]int{}
	for _, h := range hs {
		if h.Reason != "no schema for event type Poison" {
			t.Errorf("%s@%d held for %q", h.StreamID, h.FirstVersion, h.Reason)
		}
		if h.Waiting != int64(appends-poisoned[h.StreamID]) {
			t.Errorf("%s@%d: %d appends waiting, want %d", h.StreamID, h.FirstVersion, h.Waiting, appends-poisoned[h.StreamID])
		}
		held[h.StreamID] = int(h.FirstVersion)
	}
	if fmt.Sprint(held) != fmt.Sprint(poisoned) {
		t.Errorf("held %v, want %v", held, poisoned)
	}
}

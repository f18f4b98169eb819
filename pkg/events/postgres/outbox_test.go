package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// lockKey is an advisory lock of the test's own: locks are shared by the whole database, and
// other tests run beside this one.
func lockKey(tb testing.TB) int64 {
	tb.Helper()
	h := fnv.New64a()
	h.Write([]byte(testenv.UniqueName(tb)))
	return int64(h.Sum64())
}

// lead opens the publishing session of s's outbox, closed when the test ends.
func lead(tb testing.TB, s *postgres.Store, key int64) outbox.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.Outbox().Lead(ctx, key, 10*time.Millisecond)
	if err != nil {
		tb.Fatalf("lead: %v", err)
	}
	tb.Cleanup(sess.Close)
	return sess
}

// TestStore_StatsWithoutRelay: the store's statistics count every appended event once,
// whatever became of its outbox row: still pending, published, held, or skipped by an
// operator. No relay runs; the outbox is settled through the store's own session.
func TestStore_StatsWithoutRelay(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	appends := []struct {
		stream string
		n      int
		typ    string
	}{
		{"user-1", 1, "UserCreated"},
		{"order-1", 3, "ItemAdded"},
		{"order-1", 1, "OrderConfirmed"},
		{"user-2", 1, "UserCreated"},
		{"order-2", 2, "ItemAdded"},
		{"order-2", 1, "ItemRemoved"},
	}
	wantTypes := map[string]int64{}
	var wantEvents int64
	for _, a := range appends {
		if _, err := s.Append(ctx, a.stream, events.Any(), evs(t, a.n, a.typ), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		wantTypes[a.typ] += int64(a.n)
		wantEvents += int64(a.n)
	}
	check := func(t *testing.T, when string) {
		t.Helper()
		st, err := s.Stats(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.TotalEvents != wantEvents || st.TotalStreams != 4 || fmt.Sprint(st.EventsByType) != fmt.Sprint(wantTypes) {
			t.Errorf("%s: stats = %d events, %d streams, %v; want %d, 4, %v",
				when, st.TotalEvents, st.TotalStreams, st.EventsByType, wantEvents, wantTypes)
		}
	}
	backlog := func(t *testing.T, sess outbox.Session, want int64) outbox.Backlog {
		t.Helper()
		b, err := sess.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Appends != want {
			t.Errorf("backlog = %d appends, want %d", b.Appends, want)
		}
		return b
	}
	check(t, "pending")

	sess := lead(t, s, lockKey(t))
	if b := backlog(t, sess, int64(len(appends))); b.OldestAppend <= 0 {
		t.Errorf("oldest pending append is %v old, want more than 0", b.OldestAppend)
	}
	pending, err := sess.Pending(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != len(appends) {
		t.Fatalf("%d appends pending, want %d", len(pending), len(appends))
	}
	// Publish the user streams, hold order-1 at its first append.
	var settled []outbox.Settlement
	for _, a := range pending {
		switch {
		case a.StreamID == "order-1" && a.FirstVersion == 0:
			settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: 0, Hold: "no schema"})
		case a.StreamID == "order-1":
			settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion, Behind: true})
		case a.Category == "user":
			settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion})
		}
	}
	if err := sess.Settle(ctx, settled); err != nil {
		t.Fatal(err)
	}
	check(t, "partly settled, one stream held")
	if b := backlog(t, sess, int64(len(appends)-2)); b.HeldStreams != 1 || b.HeldAppends != 2 {
		t.Errorf("backlog: %d held streams, %d held appends; want 1, 2", b.HeldStreams, b.HeldAppends)
	}
	if _, err := s.Outbox().Skip(ctx, "order-1", 0, "ops", "a test"); err != nil {
		t.Fatal(err)
	}
	check(t, "after a skip")
	backlog(t, sess, int64(len(appends)-3))
	var dead string
	if err := pool.QueryRow(ctx, `select stream_id || '@' || first_version || '..' || last_version || ': ' || error from annals_outbox_dead`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dead != "order-1@0..2: no schema" {
		t.Errorf("skipped: %q, want order-1@0..2: no schema", dead)
	}

	pending, err = sess.Pending(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	settled = settled[:0]
	for _, a := range pending {
		settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion})
	}
	if err := sess.Settle(ctx, settled); err != nil {
		t.Fatal(err)
	}
	check(t, "all settled")
	if b := backlog(t, sess, 0); b.OldestAppend != 0 {
		t.Errorf("empty outbox: oldest append %v old, want 0", b.OldestAppend)
	}
}

// TestOutbox_Pending: appends come whole, with their events, sorted by stream and version,
// each with its stream's oldest pending append; the window takes the appends that start
// within the event budget, oldest transaction first.
func TestOutbox_Pending(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	for _, a := range []struct {
		stream string
		n      int
	}{{"order-b", 2}, {"order-a", 3}, {"order-b", 1}, {"order-c", 4}} {
		if _, err := s.Append(ctx, a.stream, events.Any(), evs(t, a.n, "ItemAdded"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sess := lead(t, s, lockKey(t))
	for _, tc := range []struct {
		name      string
		maxEvents int
		want      string
	}{
		{"All", 100, "order-a 0..2 head 0 [0 1 2]; order-b 0..1 head 0 [0 1]; order-b 2..2 head 0 [2]; order-c 0..3 head 0 [0 1 2 3]"},
		{"StartsWithinBudget", 4, "order-a 0..2 head 0 [0 1 2]; order-b 0..1 head 0 [0 1]"},
		{"OneEvenIfLarger", 1, "order-b 0..1 head 0 [0 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending, err := sess.Pending(ctx, tc.maxEvents, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for i, a := range pending {
				if i > 0 {
					got += "; "
				}
				var versions []int64
				for _, e := range a.Events {
					versions = append(versions, e.Version)
					if e.StreamID != a.StreamID || e.Category != a.Category {
						t.Errorf("%s@%d in the append of %s (%s)", e.StreamID, e.Version, a.StreamID, a.Category)
					}
				}
				got += fmt.Sprintf("%s %d..%d head %d %v", a.StreamID, a.FirstVersion, a.LastVersion, a.Head, versions)
			}
			if got != tc.want {
				t.Errorf("pending:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "order-b", FirstVersion: 0}}); err != nil {
		t.Fatal(err)
	}
	pending, err := sess.Pending(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pending {
		if a.StreamID == "order-b" && (a.FirstVersion != 2 || a.Head != 2) {
			t.Errorf("after settling order-b's first append: order-b %d.. head %d, want 2.. head 2", a.FirstVersion, a.Head)
		}
	}
}

// TestOutbox_Lead: one session at a time holds the lock; the next takes it once the first is
// closed, and a Lead whose context ends first says so.
func TestOutbox_Lead(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	key := lockKey(t)
	first, err := s.Outbox().Lead(ctx, key, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = s.Outbox().Lead(waitCtx, key, 10*time.Millisecond)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second Lead while the first holds the lock: %v, want the context's deadline", err)
	}
	if first.Lost() {
		t.Error("the first session is lost while open")
	}
	first.Close()
	second := lead(t, s, key)
	if _, err := second.Backlog(ctx); err != nil {
		t.Errorf("the second session: %v", err)
	}
}

// TestOutbox_EmptyAndWaiting: the outbox's figures for tools that wait for a relay, before
// and after its appends are settled.
func TestOutbox_EmptyAndWaiting(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	o := s.Outbox()
	figures := func() (bool, int64) {
		t.Helper()
		empty, err := o.Empty(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := o.Waiting(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return empty, n
	}
	if empty, n := figures(); !empty || n != 0 {
		t.Fatalf("a new store: empty %v, %d waiting; want true, 0", empty, n)
	}
	for _, stream := range []string{"order-a", "order-b", "order-a"} {
		if _, err := s.Append(ctx, stream, events.Any(), evs(t, 2, "ItemAdded"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if empty, n := figures(); empty || n != 3 {
		t.Fatalf("after three appends: empty %v, %d waiting; want false, 3", empty, n)
	}
	sess := lead(t, s, lockKey(t))
	if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "order-a", FirstVersion: 0}, {StreamID: "order-b", FirstVersion: 0},
		{StreamID: "order-a", FirstVersion: 2}}); err != nil {
		t.Fatal(err)
	}
	if empty, n := figures(); !empty || n != 0 {
		t.Fatalf("after the settlement: empty %v, %d waiting; want true, 0", empty, n)
	}
}

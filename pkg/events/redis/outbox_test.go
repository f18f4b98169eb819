package redis_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/events/redis"
)

// leaseKey is a lease key of the test's own.
func leaseKey(tb testing.TB) int64 {
	tb.Helper()
	h := fnv.New64a()
	h.Write([]byte(tb.Name() + uuid.NewString()))
	return int64(h.Sum64())
}

// lead opens the publishing session of o, closed when the test ends.
func lead(tb testing.TB, o *redis.Outbox, key int64) outbox.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := o.Lead(ctx, key, 10*time.Millisecond)
	if err != nil {
		tb.Fatalf("lead: %v", err)
	}
	tb.Cleanup(sess.Close)
	return sess
}

func appendN(tb testing.TB, s *redis.Store, stream string, n int, typ string) events.AppendResult {
	tb.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{Type: typ, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	res, err := s.Append(context.Background(), stream, events.Any(), evs, events.AppendOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// window is a read's appends as "stream@first-last head held".
func window(as []outbox.Append) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%s@%d-%d h%d %v", a.StreamID, a.FirstVersion, a.LastVersion, a.Head, a.Held)
		if int64(len(a.Events)) != a.LastVersion-a.FirstVersion+1 || a.Events[0].Version != a.FirstVersion {
			out[i] += " (events do not match)"
		}
	}
	return out
}

func TestOutbox_Pending(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, redis.Options{})
	appendN(t, s, "user-2", 2, "UserCreated") // positions 1-2
	appendN(t, s, "user-1", 1, "UserCreated") // 3
	appendN(t, s, "user-2", 1, "UserRenamed") // 4
	appendN(t, s, "order-1", 3, "ItemAdded")  // 5-7
	sess := lead(t, s.Outbox(), leaseKey(t))

	t.Run("All", func(t *testing.T) {
		got, err := sess.Pending(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"order-1@0-2 h0 false", "user-1@0-0 h0 false", "user-2@0-1 h0 false", "user-2@2-2 h0 false"}
		if fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending = %v, want %v", window(got), want)
		}
		if !got[0].CreatedAt.Equal(got[0].Events[0].RecordedAt) || got[0].Bytes <= 0 || got[0].Category != "order" {
			t.Errorf("order-1: created %v, %d bytes, category %q", got[0].CreatedAt, got[0].Bytes, got[0].Category)
		}
	})
	t.Run("EventBudget", func(t *testing.T) {
		// Appends that start within the first 3 events: the first two, and the third starts
		// at event 4.
		got, err := sess.Pending(ctx, 3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"user-1@0-0 h0 false", "user-2@0-1 h0 false"}
		if fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending = %v, want %v", window(got), want)
		}
	})
	t.Run("ByteBudget", func(t *testing.T) {
		// The first append whatever its size, and no more past the budget.
		got, err := sess.Pending(ctx, 100, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"user-2@0-1 h0 false"}; fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending = %v, want %v", window(got), want)
		}
	})
	t.Run("SettleAndHold", func(t *testing.T) {
		err := sess.Settle(ctx, []outbox.Settlement{
			{StreamID: "user-2", FirstVersion: 0},
			{StreamID: "user-1", FirstVersion: 0, Hold: "no schema for UserCreated"},
		})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, s, "user-1", 1, "UserRenamed") // read once, held
		got, err := sess.Pending(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"order-1@0-2 h0 false", "user-1@1-1 h0 true", "user-2@2-2 h2 false"}
		if fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending = %v, want %v", window(got), want)
		}
		b, err := sess.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Appends != 4 || b.HeldAppends != 1 || b.HeldStreams != 1 || b.OldestAppend <= 0 {
			t.Errorf("backlog = %+v, want 4 appends, 1 held in 1 stream, an age", b)
		}
		if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "user-1", FirstVersion: 1, Behind: true}}); err != nil {
			t.Fatal(err)
		}
		holds, err := s.Outbox().Holds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(holds) != 1 || holds[0].StreamID != "user-1" || holds[0].FirstVersion != 0 || holds[0].LastVersion != 0 ||
			holds[0].Reason != "no schema for UserCreated" || holds[0].Waiting != 2 || holds[0].HeldAt.IsZero() {
			t.Errorf("holds = %+v", holds)
		}
	})
	t.Run("HoldsSurviveSessions", func(t *testing.T) {
		sess.Close()
		if !sess.Lost() {
			t.Error("a closed session is not lost")
		}
		other := lead(t, s.Outbox(), leaseKey(t))
		got, err := other.Pending(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"order-1@0-2 h0 false", "user-2@2-2 h2 false"}
		if fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending = %v, want %v", window(got), want)
		}
		if _, err := s.Outbox().Retry(ctx, "user-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Outbox().Retry(ctx, "user-1"); !errors.Is(err, outbox.ErrNotHeld) {
			t.Errorf("retry again = %v, want ErrNotHeld", err)
		}
		got, err = other.Pending(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want = []string{"order-1@0-2 h0 false", "user-1@0-0 h0 false", "user-1@1-1 h0 false", "user-2@2-2 h2 false"}
		if fmt.Sprint(window(got)) != fmt.Sprint(want) {
			t.Errorf("pending after retry = %v, want %v", window(got), want)
		}
	})
}

// TestOutbox_BehindOnlyWhileHeld: an append settled Behind is kept among the held appends
// only while its stream's hold exists; a hold deleted by hand is reconciled.
func TestOutbox_BehindOnlyWhileHeld(t *testing.T) {
	ctx := t.Context()
	s, prefix := newNamedStore(t, redis.Options{})
	rdb := client(t)
	appendN(t, s, "user-1", 1, "UserCreated")
	appendN(t, s, "user-1", 1, "UserRenamed")
	sess := lead(t, s.Outbox(), leaseKey(t))
	// No hold: Behind keeps the append where it is.
	if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "user-1", FirstVersion: 1, Behind: true}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := sess.Pending(ctx, 100, 1<<20); len(got) != 2 {
		t.Fatalf("pending = %v, want both appends", window(got))
	}
	if err := sess.Settle(ctx, []outbox.Settlement{
		{StreamID: "user-1", FirstVersion: 0, Hold: "refused"}, {StreamID: "user-1", FirstVersion: 1, Behind: true},
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := sess.Pending(ctx, 100, 1<<20); len(got) != 0 {
		t.Fatalf("pending = %v, want none", window(got))
	}
	// The hold deleted by hand: Reconcile returns both appends.
	if n := rdb.HDel(ctx, "{"+prefix+"}:outbox-holds", "user-1").Val(); n != 1 {
		t.Fatalf("deleted %d holds by hand, want 1", n)
	}
	n, err := sess.Reconcile(ctx)
	if err != nil || n != 2 {
		t.Fatalf("reconcile = %d, %v; want 2", n, err)
	}
	if got, _ := sess.Pending(ctx, 100, 1<<20); len(got) != 2 {
		t.Fatalf("pending after reconcile = %v, want both appends", window(got))
	}
}

// TestOutbox_Skip: a skip needs the held version, who and why; it drops the held append and
// returns those behind it to the flow.
func TestOutbox_Skip(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, redis.Options{})
	o := s.Outbox()
	appendN(t, s, "order-1", 1, "Poison")
	appendN(t, s, "order-1", 2, "ItemAdded")
	sess := lead(t, o, leaseKey(t))
	if err := sess.Settle(ctx, []outbox.Settlement{
		{StreamID: "order-1", FirstVersion: 0, Hold: "no schema for Poison"}, {StreamID: "order-1", FirstVersion: 1, Behind: true},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Skip(ctx, "order-1", 0, "", ""); !errors.Is(err, redis.ErrSkipUnexplained) {
		t.Errorf("skip without who and why = %v, want ErrSkipUnexplained", err)
	}
	if _, err := o.Skip(ctx, "order-1", 1, "ops", "poison"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("skip at the wrong version = %v, want ErrNotHeld", err)
	}
	if _, err := o.Skip(ctx, "order-2", 0, "ops", "poison"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("skip of a stream not held = %v, want ErrNotHeld", err)
	}
	h, err := o.Skip(ctx, "order-1", 0, "ops", "poison")
	if err != nil {
		t.Fatal(err)
	}
	if h.Reason != "no schema for Poison" || h.Waiting != 2 || h.FirstVersion != 0 {
		t.Errorf("skipped hold = %+v", h)
	}
	got, err := sess.Pending(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"order-1@1-2 h1 false"}; fmt.Sprint(window(got)) != fmt.Sprint(want) {
		t.Errorf("pending after skip = %v, want %v", window(got), want)
	}
	if n, err := o.Waiting(ctx); err != nil || n != 1 {
		t.Errorf("waiting = %d, %v; want 1", n, err)
	}
	st, err := s.Stats(ctx, 0)
	if err != nil || st.TotalEvents != 3 {
		t.Errorf("stats = %d events, %v; want 3: a skipped event stays counted", st.TotalEvents, err)
	}
}

// TestOutbox_Lease: one session leads at a time; a session whose lease was taken over settles
// nothing and is lost; a session whose server is gone is lost once its lease has run out.
func TestOutbox_Lease(t *testing.T) {
	ctx := t.Context()
	s, prefix := newNamedStore(t, redis.Options{LeaseTTL: 300 * time.Millisecond})
	key := leaseKey(t)
	appendN(t, s, "user-1", 1, "UserCreated")
	first := lead(t, s.Outbox(), key)

	t.Run("OneLeader", func(t *testing.T) {
		// Renewed every 100 ms, the lease outlives its length many times over.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if sess, err := s.Outbox().Lead(wctx, key, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			if sess != nil {
				sess.Close()
			}
			t.Fatalf("second lead = %v, want to wait until its context ends", err)
		}
		if first.Lost() {
			t.Fatal("the leading session is lost")
		}
	})

	t.Run("Fenced", func(t *testing.T) {
		// The lease taken from under the first session (as if it had expired while the
		// session was paused): the first session may read, but settles nothing.
		rdb := client(t)
		if n := rdb.Del(ctx, "{"+prefix+"}:outbox-lease:"+strconv.FormatInt(key, 10)).Val(); n != 1 {
			t.Fatalf("deleted %d leases, want 1", n)
		}
		second := lead(t, s.Outbox(), key)
		err := first.Settle(ctx, []outbox.Settlement{{StreamID: "user-1", FirstVersion: 0}})
		if !errors.Is(err, redis.ErrLeaseLost) {
			t.Fatalf("settle of the fenced session = %v, want ErrLeaseLost", err)
		}
		if !first.Lost() {
			t.Error("the fenced session is not lost")
		}
		if got, err := second.Pending(ctx, 100, 1<<20); err != nil || len(got) != 1 {
			t.Fatalf("pending = %v, %v; want the append still there", window(got), err)
		}
		first.Close() // must not release the second session's lease
		if err := second.Settle(ctx, []outbox.Settlement{{StreamID: "user-1", FirstVersion: 0}}); err != nil {
			t.Fatalf("settle of the leading session: %v", err)
		}
		if empty, err := s.Outbox().Empty(ctx); err != nil || !empty {
			t.Errorf("empty = %v, %v; want true", empty, err)
		}
	})

	t.Run("ServerGone", func(t *testing.T) {
		rdb := client(t)
		own := redis.New(rdb, redis.Options{Prefix: prefix, LeaseTTL: 300 * time.Millisecond})
		sess, err := own.Outbox().Lead(ctx, leaseKey(t), 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		rdb.Close()
		deadline := time.Now().Add(5 * time.Second)
		for !sess.Lost() {
			if time.Now().After(deadline) {
				t.Fatal("a session cut from its server is not lost after its lease ran out")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestOutbox_Listen: an append wakes a listener.
func TestOutbox_Listen(t *testing.T) {
	s := newStore(t, redis.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	woken := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- s.Outbox().Listen(ctx, func() { woken <- struct{}{} }) }()
	select {
	case <-woken: // subscribed
	case <-time.After(10 * time.Second):
		t.Fatal("not woken once subscribed")
	}
	appendN(t, s, "user-1", 1, "UserCreated")
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("an append did not wake the listener")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("listen = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not return when its context ended")
	}
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// sized is an event whose data is exactly n bytes.
func sized(n int) events.Event {
	return events.Event{Type: "ItemAdded", Data: []byte(`{"b":"` + strings.Repeat("x", n-8) + `"}`)}
}

// describe writes a window as "stream first..last head H [held] bytes B".
func describe(pending []outbox.Append) string {
	var out []string
	for _, a := range pending {
		held := ""
		if a.Held {
			held = " held"
		}
		out = append(out, fmt.Sprintf("%s %d..%d head %d%s %dB", a.StreamID, a.FirstVersion, a.LastVersion, a.Head, held, a.Bytes))
	}
	return strings.Join(out, "; ")
}

// TestOutbox_PendingByteBudget: a window holds the appends, oldest transaction first, whose
// data and metadata fit in the byte budget with those before them, and never more unless the
// first transaction's alone are larger; the cut falls between transactions, so the appends of
// one transaction are read together.
func TestOutbox_PendingByteBudget(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	for _, a := range []struct {
		stream string
		sizes  []int
	}{{"order-a", []int{1000}}, {"order-b", []int{500, 500}}, {"order-c", []int{3000}}, {"order-a", []int{100}}} {
		var evs []events.Event
		for _, n := range a.sizes {
			evs = append(evs, sized(n))
		}
		if _, err := s.Append(ctx, a.stream, events.Any(), evs, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"order-d", "order-e"} {
		if _, err := s.AppendTx(ctx, tx, stream, events.NoStream(), []events.Event{sized(500)}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Each event counts its data and its empty metadata, {}.
	sess := lead(t, s, lockKey(t))
	for _, tc := range []struct {
		name     string
		maxBytes int64
		want     string
	}{
		{"All", 1 << 20, "order-a 0..0 head 0 1002B; order-a 1..1 head 0 102B; order-b 0..1 head 0 1004B; order-c 0..0 head 0 3002B; order-d 0..0 head 0 502B; order-e 0..0 head 0 502B"},
		{"WholeTransactions", 5700, "order-a 0..0 head 0 1002B; order-a 1..1 head 0 102B; order-b 0..1 head 0 1004B; order-c 0..0 head 0 3002B"},
		{"WholeAppendsWithin", 2006, "order-a 0..0 head 0 1002B; order-b 0..1 head 0 1004B"},
		{"NotAByteMore", 2005, "order-a 0..0 head 0 1002B"},
		{"TheFirstAloneWhateverItsSize", 10, "order-a 0..0 head 0 1002B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending, err := sess.Pending(ctx, 100, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, a := range pending {
				total += a.Bytes
				var data int64
				for _, e := range a.Events {
					data += int64(len(e.Data))
				}
				if data+2*int64(len(a.Events)) != a.Bytes {
					t.Errorf("%s@%d counts %d bytes, its events' data %d", a.StreamID, a.FirstVersion, a.Bytes, data)
				}
			}
			if got := describe(pending); got != tc.want {
				t.Errorf("pending:\n got %s\nwant %s", got, tc.want)
			}
			if total > tc.maxBytes && len(pending) > 1 {
				t.Errorf("a window of %d appends holds %d bytes, over the budget of %d", len(pending), total, tc.maxBytes)
			}
		})
	}
}

// TestOutbox_Holds: a hold keeps its append and those behind it out of later reads, the ones
// appended after it too once the relay settles them behind it; the operator lists, retries
// and skips holds; a row is never kept behind a hold that does not exist, and rows kept behind
// a hold deleted by hand return with Reconcile.
func TestOutbox_Holds(t *testing.T) {
	ctx := context.Background()
	s, pool := newStore(t, postgres.Options{})
	o := s.Outbox()
	sess := lead(t, s, lockKey(t))
	appendTo := func(stream string, n int) {
		t.Helper()
		if _, err := s.Append(ctx, stream, events.Any(), evs(t, n, "ItemAdded"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(want string) []outbox.Append {
		t.Helper()
		p, err := sess.Pending(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range p {
			held := ""
			if a.Held {
				held = " held"
			}
			got = append(got, fmt.Sprintf("%s@%d%s", a.StreamID, a.FirstVersion, held))
		}
		if g := strings.Join(got, " "); g != want {
			t.Fatalf("pending: %q, want %q", g, want)
		}
		return p
	}
	settle := func(st ...outbox.Settlement) {
		t.Helper()
		if err := sess.Settle(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(want string) {
		t.Helper()
		hs, err := o.Holds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hs {
			got = append(got, fmt.Sprintf("%s@%d..%d %d waiting: %s", h.StreamID, h.FirstVersion, h.LastVersion, h.Waiting, h.Reason))
		}
		if g := strings.Join(got, "; "); g != want {
			t.Errorf("holds: %q, want %q", g, want)
		}
	}

	appendTo("order-1", 2)
	appendTo("order-1", 1)
	appendTo("order-2", 1)
	pending("order-1@0 order-1@2 order-2@0")
	settle(outbox.Settlement{StreamID: "order-1", FirstVersion: 0, Hold: "no schema"},
		outbox.Settlement{StreamID: "order-1", FirstVersion: 2, Behind: true},
		outbox.Settlement{StreamID: "order-2", FirstVersion: 0})
	pending("")
	holds("order-1@0..1 2 waiting: no schema")

	appendTo("order-1", 1)
	pending("order-1@3 held")
	settle(outbox.Settlement{StreamID: "order-1", FirstVersion: 3, Behind: true})
	pending("")
	holds("order-1@0..1 3 waiting: no schema")

	// Behind a hold that does not exist, nothing is kept.
	appendTo("order-3", 1)
	settle(outbox.Settlement{StreamID: "order-3", FirstVersion: 0, Behind: true})
	pending("order-3@0")
	settle(outbox.Settlement{StreamID: "order-3", FirstVersion: 0})

	if _, err := o.Retry(ctx, "order-3"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("retry of a stream that is not held: %v, want ErrNotHeld", err)
	}
	h, err := o.Retry(ctx, "order-1")
	if err != nil || h.StreamID != "order-1" || h.Reason != "no schema" || h.Waiting != 3 {
		t.Fatalf("retry = %+v, %v", h, err)
	}
	holds("")
	p := pending("order-1@0 order-1@2 order-1@3")
	if p[0].Head != 0 || p[2].Head != 0 {
		t.Errorf("heads after the retry: %d, %d, want 0", p[0].Head, p[2].Head)
	}

	// Held again; an operator skips the held append.
	settle(outbox.Settlement{StreamID: "order-1", FirstVersion: 0, Hold: "no schema, still"},
		outbox.Settlement{StreamID: "order-1", FirstVersion: 2, Behind: true}, outbox.Settlement{StreamID: "order-1", FirstVersion: 3, Behind: true})
	pending("")
	if _, err := o.Skip(ctx, "order-1", 0, "", "no one"); !errors.Is(err, postgres.ErrSkipUnexplained) {
		t.Errorf("skip without who: %v, want ErrSkipUnexplained", err)
	}
	if _, err := o.Skip(ctx, "order-1", 2, "ops", "wrong version"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("skip at a version not held: %v, want ErrNotHeld", err)
	}
	if _, err := o.Skip(ctx, "order-1", 0, "ops", "written by mistake"); err != nil {
		t.Fatal(err)
	}
	p = pending("order-1@2 order-1@3")
	if p[0].Head != 2 {
		t.Errorf("head after the skip: %d, want 2", p[0].Head)
	}
	var dead string
	if err := pool.QueryRow(ctx, `select stream_id || '@' || first_version || '..' || last_version || ': ' || error || '; ' || skipped_by || ': ' || skip_reason
		from annals_outbox_dead`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if want := "order-1@0..1: no schema, still; ops: written by mistake"; dead != want {
		t.Errorf("skipped: %q, want %q", dead, want)
	}

	// A hold deleted by hand: its rows return with Reconcile.
	settle(outbox.Settlement{StreamID: "order-1", FirstVersion: 2, Hold: "again"}, outbox.Settlement{StreamID: "order-1", FirstVersion: 3, Behind: true})
	pending("")
	if _, err := pool.Exec(ctx, `delete from annals_outbox_holds`); err != nil {
		t.Fatal(err)
	}
	if n, err := sess.Reconcile(ctx); err != nil || n != 2 {
		t.Errorf("reconcile = %d, %v; want 2", n, err)
	}
	pending("order-1@2 order-1@3")
	if n, err := sess.Reconcile(ctx); err != nil || n != 0 {
		t.Errorf("second reconcile = %d, %v; want 0", n, err)
	}
}

// TestOutbox_RetryAll releases every hold.
func TestOutbox_RetryAll(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, postgres.Options{})
	for _, stream := range []string{"order-1", "order-2"} {
		if _, err := s.Append(ctx, stream, events.Any(), evs(t, 1, "ItemAdded"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sess := lead(t, s, lockKey(t))
	if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "order-1", Hold: "a"}, {StreamID: "order-2", Hold: "b"}}); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Outbox().RetryAll(ctx)
	if err != nil || len(hs) != 2 {
		t.Fatalf("retry all = %+v, %v", hs, err)
	}
	p, err := sess.Pending(ctx, 100, 1<<20)
	if err != nil || len(p) != 2 {
		t.Errorf("pending after retrying all: %s, %v", describe(p), err)
	}
}

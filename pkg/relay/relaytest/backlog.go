package relaytest

import (
	"context"
	"fmt"
	"testing"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// describeAppends describes a window of the outbox.
func describeAppends(as []outbox.Append) string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s@%d..%d head %d held %v (%d events)", a.StreamID, a.FirstVersion, a.LastVersion, a.Head, a.Held, len(a.Events)))
	}
	return fmt.Sprint(out)
}

// testBacklog: a session's Backlog counts the appends waiting, held and not, and the age of
// the oldest one not held, as a session settles them and an operator releases a hold;
// Pending reads whole appends, oldest transaction first, sorted by stream and version, passes
// over the held ones, and reads them again once released.
func testBacklog(t *testing.T, e *env) {
	ctx := context.Background()
	e.append(t, "order-a", 2, "Something")
	e.append(t, "order-a", 1, "Something")
	e.append(t, "order-b", 1, "Something")
	e.observe(t, func(s outbox.Session) {
		backlog := func(what string, appends, heldStreams, heldAppends int64, waiting bool) {
			t.Helper()
			b, err := s.Backlog(ctx)
			if err != nil {
				t.Fatalf("backlog: %v", err)
			}
			if b.Appends != appends || b.HeldStreams != heldStreams || b.HeldAppends != heldAppends || (b.OldestAppend > 0) != waiting || b.OldestAppend < 0 {
				t.Errorf("%s: backlog %+v; want %d appends, %d held streams, %d held appends, an oldest append's age: %v",
					what, b, appends, heldStreams, heldAppends, waiting)
			}
		}
		pending := func(what string, maxEvents int, want string) []outbox.Append {
			t.Helper()
			p, err := s.Pending(ctx, maxEvents, 1<<20)
			if err != nil {
				t.Fatalf("pending: %v", err)
			}
			if got := describeAppends(p); got != want {
				t.Errorf("%s: pending\n got %s\nwant %s", what, got, want)
			}
			return p
		}
		backlog("three appends", 3, 0, 0, true)
		pending("the first event's append", 1, "[order-a@0..1 head 0 held false (2 events)]")
		pending("every append", 100, "[order-a@0..1 head 0 held false (2 events) order-a@2..2 head 0 held false (1 events) order-b@0..0 head 0 held false (1 events)]")
		if err := s.Settle(ctx, []outbox.Settlement{
			{StreamID: "order-a", FirstVersion: 0, Hold: "refused by the test"},
			{StreamID: "order-a", FirstVersion: 2, Behind: true},
			{StreamID: "order-b", FirstVersion: 0},
		}); err != nil {
			t.Fatalf("settle: %v", err)
		}
		backlog("order-b published, order-a held", 2, 1, 2, false)
		pending("order-a held", 100, "[]")
		if got, want := e.holds(t), "order-a@0..1 (order, 2 waiting): refused by the test"; got != want {
			t.Errorf("holds:\n got %s\nwant %s", got, want)
		}
		if h, err := e.Operator.Retry(ctx, "order-a"); err != nil || h.FirstVersion != 0 || h.Waiting != 2 {
			t.Fatalf("retry order-a = %+v, %v", h, err)
		}
		backlog("order-a released", 2, 0, 0, true)
		pending("order-a released", 100, "[order-a@0..1 head 0 held false (2 events) order-a@2..2 head 0 held false (1 events)]")
		if err := s.Settle(ctx, []outbox.Settlement{{StreamID: "order-a", FirstVersion: 0}, {StreamID: "order-a", FirstVersion: 2}}); err != nil {
			t.Fatalf("settle: %v", err)
		}
		backlog("every append published", 0, 0, 0, false)
		pending("nothing", 100, "[]")
	})
}

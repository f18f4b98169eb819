package eventstest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// testHead: the head is 0 before the first append and, with no append under way, at least
// the last position committed, and nothing reads after it.
func testHead(t *testing.T, s events.Store) {
	ctx := t.Context()
	head := func() int64 {
		t.Helper()
		h, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := head(); h != 0 {
		t.Errorf("an empty store's head is %d, want 0", h)
	}
	for i := range 3 {
		res := mustAppend(t, s, "order-h", events.Any(), batch(t, 1+i, "ItemAdded")...)
		h := head()
		if h < res.LastPosition {
			t.Errorf("after an append up to position %d the head is %d", res.LastPosition, h)
		}
		if page, err := s.ReadAll(ctx, events.AllQuery{After: h, Limit: 10}); err != nil || len(page) != 0 {
			t.Errorf("after the head %d: %d events, %v; want none", h, len(page), err)
		}
	}
}

// testReadAllWhileAppending: a reader pages forward through the all-stream, each page after
// the last position it read, while appenders append concurrently; once they are done and it
// reaches the end, it has read every event exactly once, in position order. A store that
// shows an append before one with a lower position has committed makes it skip that one.
func testReadAllWhileAppending(t *testing.T, s events.Store) {
	ctx := t.Context()
	const workers, perWorker = 8, 25
	var appended sync.Map // event id -> true
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				stream := "order-w" + string(rune('a'+w))
				res, err := s.Append(ctx, stream, events.Any(), batch(t, 1+i%2, "ItemAdded"), events.AppendOptions{})
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				for _, id := range res.EventIDs {
					appended.Store(id, true)
				}
			}
		})
	}
	go func() { wg.Wait(); done.Store(true) }()

	var read []events.Envelope
	q := events.AllQuery{Limit: 3}
	for {
		finished := done.Load() // before the page: a short page after this is the end
		page, err := s.ReadAll(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, page...)
		if len(page) > 0 {
			q.After = page[len(page)-1].GlobalPosition
		}
		if finished && len(page) < q.Limit {
			break
		}
	}
	for i := 1; i < len(read); i++ {
		if read[i].GlobalPosition <= read[i-1].GlobalPosition {
			t.Fatalf("read position %d after %d", read[i].GlobalPosition, read[i-1].GlobalPosition)
		}
	}
	var want []uuid.UUID
	appended.Range(func(k, _ any) bool { want = append(want, k.(uuid.UUID)); return true })
	got := ids(read)
	var missed []uuid.UUID
	for _, id := range want {
		if !slices.Contains(got, id) {
			missed = append(missed, id)
		}
	}
	if len(missed) > 0 || len(got) != len(want) {
		t.Errorf("paging forward while appending read %d events of %d; skipped %d, such as %v", len(got), len(want), len(missed), missed[:min(len(missed), 3)])
	}
}

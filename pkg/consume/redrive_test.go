package consume_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// A stream parked behind a handler that fails for it is redriven once the handler is fixed:
// the running consumer applies its dead-lettered and parked events in order, each once,
// releases it, and applies its later events as they come. A redrive whose first event fails
// again leaves the stream blocked at that event, with the new reason; a second one, once
// that is fixed too, releases it.
func TestConsumer_RedriveAppliesParkedEventsInOrderOnce(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 2)
	recs := streams("rd", 8, 6)
	publish(t, topic, recs)
	const fixed, stubborn = "user-rd-5", "user-rd-6"
	var brokenFixed, brokenStubborn atomic.Bool
	brokenFixed.Store(true)
	brokenStubborn.Store(true)
	h := newRecorder()
	h.fail = func(m *consume.Message) error {
		switch {
		case brokenFixed.Load() && m.Event.StreamID == fixed && m.Event.Version == 2:
			return consume.Permanent(errors.New("cannot apply: broken on purpose"))
		case brokenStubborn.Load() && m.Event.StreamID == stubborn && m.Event.Version == 3:
			return consume.Permanent(errors.New("still broken"))
		}
		return nil
	}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	table := consume.PostgresBlocks(pool)
	cfg.Blocks = table
	cfg.BlockRefresh = 200 * time.Millisecond
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the other streams and the commits", func() bool {
		return h.count() == len(recs)-4-3 && caughtUp(t, group, topic, 3)
	})
	if got := r.c.Blocked(); !slices.Equal(got, []string{fixed, stubborn}) {
		t.Fatalf("blocked %v, want [%s %s]", got, fixed, stubborn)
	}
	released := func(stream string) func() bool {
		return func() bool {
			_, err := table.Get(ctx, group, stream)
			return errors.Is(err, consume.ErrNotBlocked) && !slices.Contains(r.c.Blocked(), stream)
		}
	}

	t.Run("Fixed", func(t *testing.T) {
		brokenFixed.Store(false)
		if _, err := table.RequestRedrive(ctx, group, fixed); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the redrive to release the stream", released(fixed))
		later := rec{fixed, 6}
		publish(t, topic, []rec{later})
		waitFor(t, 30*time.Second, "the stream's next event", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.seen[later] == 1 })
		h.mu.Lock()
		defer h.mu.Unlock()
		for v := int64(0); v <= 6; v++ {
			if n := h.seen[rec{fixed, v}]; n != 1 {
				t.Errorf("%s v%d applied %d times, want once", fixed, v, n)
			}
		}
		if len(h.violations) > 0 {
			t.Errorf("order violations: %v", h.violations)
		}
	})

	t.Run("FailsAgain", func(t *testing.T) {
		if _, err := table.RequestRedrive(ctx, group, stubborn); err != nil {
			t.Fatal(err)
		}
		var b consume.Block
		waitFor(t, 30*time.Second, "the redrive to give up", func() bool {
			var err error
			b, err = table.Get(ctx, group, stubborn)
			return err == nil && !b.Redrive
		})
		if !strings.Contains(b.Reason, "still broken") || !strings.HasPrefix(b.Reason, "redrive: ") {
			t.Errorf("the block's reason is %q, want the redrive's failure", b.Reason)
		}
		if !slices.Contains(r.c.Blocked(), stubborn) {
			t.Error("the consumer released a stream whose redrive failed")
		}
		brokenStubborn.Store(false)
		if _, err := table.RequestRedrive(ctx, group, stubborn); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the second redrive to release the stream", released(stubborn))
		h.mu.Lock()
		defer h.mu.Unlock()
		for v := int64(0); v <= 5; v++ {
			if n := h.seen[rec{stubborn, v}]; n != 1 {
				t.Errorf("%s v%d applied %d times, want once", stubborn, v, n)
			}
		}
		if len(h.violations) > 0 {
			t.Errorf("order violations: %v", h.violations)
		}
	})
	r.halt(t)
	if _, err := table.RequestRedrive(ctx, group, fixed); !errors.Is(err, consume.ErrNotBlocked) {
		t.Errorf("a redrive of a released stream: %v, want ErrNotBlocked", err)
	}
}

// A parked event that no longer verifies when it is redriven (its signing key was dropped from
// the accepted ones meanwhile) stops the redrive: the stream stays blocked with the reason, and
// no event of it is skipped.
func TestConsumer_RedriveStopsAtARecordThatNoLongerVerifies(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 2), testenv.Topic(t, 2)
	recs := streams("rq", 3, 4)
	publish(t, topic, recs)
	const parked = "user-rq-2"
	var broken, keyDropped atomic.Bool
	broken.Store(true)
	h := newRecorder()
	h.fail = func(m *consume.Message) error {
		if broken.Load() && m.Event.StreamID == parked && m.Event.Version == 1 {
			return consume.Permanent(errors.New("cannot apply: broken on purpose"))
		}
		return nil
	}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	decode := cfg.Decode
	cfg.Decode = func(m kafka.Message) (events.Envelope, error) {
		if keyDropped.Load() && string(m.Key) == parked {
			return events.Envelope{}, &consume.QuarantineError{Reason: consume.QuarantineSignature,
				Err: errors.New("signature: key k-old is not accepted")}
		}
		return decode(m)
	}
	table := consume.PostgresBlocks(pool)
	cfg.Blocks, cfg.BlockRefresh = table, 200*time.Millisecond
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the stream to be blocked", func() bool { return slices.Contains(r.c.Blocked(), parked) })

	broken.Store(false)
	keyDropped.Store(true)
	if _, err := table.RequestRedrive(ctx, group, parked); err != nil {
		t.Fatal(err)
	}
	var b consume.Block
	waitFor(t, 30*time.Second, "the redrive to be refused", func() bool {
		var err error
		b, err = table.Get(ctx, group, parked)
		return err == nil && !b.Redrive
	})
	if !strings.HasPrefix(b.Reason, "redrive refused: ") || !strings.Contains(b.Reason, "not accepted") {
		t.Errorf("the block's reason is %q, want the refused redrive's", b.Reason)
	}
	if !slices.Contains(r.c.Blocked(), parked) {
		t.Error("the consumer released a stream whose parked records no longer verify")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := int64(1); v < 4; v++ {
		if n := h.seen[rec{parked, v}]; n != 0 {
			t.Errorf("%s v%d applied %d times, want none while it stays blocked", parked, v, n)
		}
	}
}

package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
)

// The operator's side of held streams: list them, release them so that the relay tries their
// held append again, or give up on a held append deliberately. Each is a script of its own (or
// reads), beside a running relay, with the same signatures as the PostgreSQL store's.

// ErrSkipUnexplained: a skip needs who decides it and why.
var ErrSkipUnexplained = errors.New("a skip needs who decides it and why")

// parseHold reads a stored hold, "firstVersion lastVersion µs reason".
func parseHold(streamID, stored string, waiting int64) (outbox.Hold, error) {
	h := outbox.Hold{StreamID: streamID, Category: events.Category(streamID), Waiting: waiting}
	fields := strings.SplitN(stored, " ", 4)
	if len(fields) != 4 {
		return h, fmt.Errorf("hold of %s: %w", streamID, errCorrupt)
	}
	var err1, err2 error
	h.FirstVersion, err1 = strconv.ParseInt(fields[0], 10, 64)
	h.LastVersion, err2 = strconv.ParseInt(fields[1], 10, 64)
	at, err3 := parseMicros(fields[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, fmt.Errorf("hold of %s: %w: %w", streamID, errCorrupt, err)
	}
	h.HeldAt, h.Reason = at, fields[3]
	return h, nil
}

// Holds lists the held streams, oldest hold first, each with the number of its appends in the
// outbox.
func (o *Outbox) Holds(ctx context.Context) ([]outbox.Hold, error) {
	st := o.s
	stored, err := st.rdb.HGetAll(ctx, st.keyHolds()).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox holds: %w", err)
	}
	ids := make([]string, 0, len(stored))
	for id := range stored {
		ids = append(ids, id)
	}
	pipe := st.rdb.Pipeline()
	counts := make([]interface{ Val() int64 }, len(ids))
	for i, id := range ids {
		counts[i] = pipe.ZCard(ctx, st.keyOutboxStream(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("outbox holds: %w", err)
		}
	}
	holds := make([]outbox.Hold, len(ids))
	for i, id := range ids {
		if holds[i], err = parseHold(id, stored[id], counts[i].Val()); err != nil {
			return nil, fmt.Errorf("outbox holds: %w", err)
		}
	}
	slices.SortFunc(holds, func(a, b outbox.Hold) int {
		return cmp.Or(a.HeldAt.Compare(b.HeldAt), strings.Compare(a.StreamID, b.StreamID))
	})
	return holds, nil
}

// Retry releases the hold of a stream: the relay reads its held append again, and publishes it
// with the appends behind it if it can now (the missing schema deployed, the topic's
// max.message.bytes raised), or holds the stream again with the new reason. It returns the
// hold it released, or an error wrapping outbox.ErrNotHeld.
func (o *Outbox) Retry(ctx context.Context, streamID string) (outbox.Hold, error) {
	stored, waiting, _, err := o.s.release(ctx, streamID, "retry")
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, err)
	}
	if stored == "" {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, outbox.ErrNotHeld)
	}
	h, err := parseHold(streamID, stored, waiting)
	if err != nil {
		return h, fmt.Errorf("retry %s: %w", streamID, err)
	}
	return h, nil
}

// RetryAll releases every hold, as Retry does, and returns those it released.
func (o *Outbox) RetryAll(ctx context.Context) ([]outbox.Hold, error) {
	ids, err := o.s.rdb.HKeys(ctx, o.s.keyHolds()).Result()
	if err != nil {
		return nil, fmt.Errorf("retry all: %w", err)
	}
	var holds []outbox.Hold
	for _, id := range ids {
		h, err := o.Retry(ctx, id)
		if errors.Is(err, outbox.ErrNotHeld) {
			continue // released meanwhile
		}
		if err != nil {
			return holds, fmt.Errorf("retry all: %w", err)
		}
		holds = append(holds, h)
	}
	slices.SortFunc(holds, func(a, b outbox.Hold) int {
		return cmp.Or(a.HeldAt.Compare(b.HeldAt), strings.Compare(a.StreamID, b.StreamID))
	})
	return holds, nil
}

// Skip gives up on a stream's held append, which must start at firstVersion: it leaves the
// outbox for the dead appends (the hash "outbox-dead", by "stream@firstVersion") with the
// hold's reason and who skipped it and why, and the appends behind it return to the flow and
// are published. Consumers that check stream versions will see the gap. It returns the hold
// it ended, or an error wrapping outbox.ErrNotHeld when the stream is not held at that
// version.
func (o *Outbox) Skip(ctx context.Context, streamID string, firstVersion int64, by, why string) (outbox.Hold, error) {
	if by == "" || why == "" {
		return outbox.Hold{}, fmt.Errorf("skip %s: %w", streamID, ErrSkipUnexplained)
	}
	st := o.s
	keys := []string{st.keyOutbox(), st.keyOutboxHeld(), st.keyHolds(), st.keyHeldStreams(), st.keyOutboxStream(streamID), st.keyDead()}
	reply, err := skipScript.Run(ctx, st.rdb, keys, streamID, firstVersion, by, why).Slice()
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	if len(reply) < 2 {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: unexpected reply %v", streamID, firstVersion, reply)
	}
	stored, _ := reply[1].(string)
	if reply[0] == "not_held" {
		if stored == "" {
			return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, outbox.ErrNotHeld)
		}
		h, _ := parseHold(streamID, stored, 0)
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w at version %d: it is held at version %d",
			streamID, firstVersion, outbox.ErrNotHeld, firstVersion, h.FirstVersion)
	}
	var waiting int64
	if len(reply) == 3 {
		waiting, _ = reply[2].(int64)
	}
	h, err := parseHold(streamID, stored, waiting)
	if err != nil {
		return h, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	return h, nil
}

// Empty reports whether no append waits in the outbox to be published.
func (o *Outbox) Empty(ctx context.Context) (bool, error) {
	n, err := o.Waiting(ctx)
	return n == 0, err
}

// Waiting counts the appends that wait in the outbox to be published, held ones included. It
// reads two counters, never a scan.
func (o *Outbox) Waiting(ctx context.Context) (int64, error) {
	st := o.s
	pipe := st.rdb.Pipeline()
	flowing := pipe.ZCard(ctx, st.keyOutbox())
	held := pipe.ZCard(ctx, st.keyOutboxHeld())
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return flowing.Val() + held.Val(), nil
}

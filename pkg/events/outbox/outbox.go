// Package outbox holds the types that cross between an event store's transactional outbox and
// the relay that publishes it: an append waiting to be published, how the relay settled it,
// the streams it holds, the backlog's figures, and the publishing session through which all of
// that goes.
//
// A stream is held, never skipped: an append that cannot be published stays in the outbox and
// holds its stream's later appends behind it, while other streams flow, until an operator
// retries it or skips it deliberately (the store's operator methods, with who and why).
//
// The store that owns the outbox table implements Session (pkg/events/postgres); the relay
// defines, where it uses it, the small interface that hands one out (relay.Outbox). Like
// pkg/events, this package depends on the standard library and pkg/events only: never on pgx,
// kafka-go or any service.
package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// Append is one append waiting in the outbox: a stream's version range, recorded in the
// append's own transaction, with its events in version order.
type Append struct {
	StreamID     string
	Category     string
	FirstVersion int64
	LastVersion  int64
	CreatedAt    time.Time
	// Head is the first version of the stream's oldest append still in the outbox. An append
	// whose FirstVersion is above it must wait until the earlier one is settled.
	Head int64
	// Held says that the append's stream is held: the append must not be published, and is
	// settled Behind.
	Held bool
	// Bytes is the size of the events' data and metadata, as the read's byte budget counts it.
	Bytes  int64
	Events []events.Envelope
}

// Settlement is what became of one append the relay read: published (Hold empty and Behind
// false), or kept in the outbox.
type Settlement struct {
	StreamID     string
	FirstVersion int64
	// Hold says why the append cannot be published as it is (an event without a schema, a
	// record the broker refuses for good): the append stays in the outbox and holds its
	// stream, whose later appends wait behind it.
	Hold string
	// Behind: the append was not published because its stream is held (Append.Held, or an
	// earlier append's Hold in the same settlement); it stays in the outbox behind the held one.
	Behind bool
}

// Published reports whether the settlement removes a published append from the outbox.
func (s Settlement) Published() bool { return s.Hold == "" && !s.Behind }

// Hold is a held stream: the oldest of its appends that could not be published, why, and how
// many of its appends wait in the outbox, the held one included.
type Hold struct {
	StreamID     string
	Category     string
	FirstVersion int64
	LastVersion  int64
	Reason       string
	HeldAt       time.Time
	Waiting      int64
}

// ErrNotHeld: the stream named is not held (or no longer held at the version named).
var ErrNotHeld = errors.New("stream is not held")

// Operator is the operator's side of held streams, which the store that owns the outbox
// implements beside its Session (postgres.Outbox): tools such as the admin CLI list the holds
// of any store and release them through it. Each method runs on its own, beside a running
// relay.
type Operator interface {
	// Holds lists the held streams, oldest hold first.
	Holds(ctx context.Context) ([]Hold, error)
	// Retry releases the hold of a stream: the relay reads its held append again, and
	// publishes it with the appends behind it if it can now, or holds the stream again with
	// the new reason. It returns the hold it released, or an error wrapping ErrNotHeld.
	Retry(ctx context.Context, streamID string) (Hold, error)
	// Skip gives up on a stream's held append, which must start at firstVersion, recording who
	// skipped it (by) and why; both are required. The appends behind it return to the flow.
	// It returns the hold it ended, or an error wrapping ErrNotHeld when the stream is not
	// held at that version.
	Skip(ctx context.Context, streamID string, firstVersion int64, by, why string) (Hold, error)
}

// Backlog is what the outbox still holds.
type Backlog struct {
	Appends int64 // appends not yet published, held ones included
	// OldestAppend is the age of the oldest of them that is not held (0 when there are none):
	// how far publishing is behind.
	OldestAppend time.Duration
	// HeldStreams is the number of held streams, and HeldAppends that of the appends held in
	// the outbox: the held ones and those behind them.
	HeldStreams int64
	HeldAppends int64
	// OldestTransaction is how long the database's oldest open transaction (other than the
	// session's own) has been running: it does not hold the relay back, but it keeps vacuum
	// from reclaiming settled rows.
	OldestTransaction time.Duration
}

// Session is the one publishing relay's hold on the outbox: the lock that makes it the
// publisher and the database session its reads and settlements go through. If that session
// breaks, the lock goes with it, and so does every later call.
type Session interface {
	// Pending reads a window of the committed appends in the outbox that are not known to be
	// held, oldest transaction first: those that start within the first maxEvents events and
	// whose events' data and metadata, with those of the transactions before theirs, fit in
	// maxBytes; so at least the first transaction's whatever their size, and no more than
	// maxBytes unless those alone are larger. Each comes with its events, its size, its stream's Head and whether its stream
	// is held, and the window is sorted by stream and version. An append that commits late,
	// behind appends already settled, is read by a later call: nothing is skipped, and an open
	// transaction holds nothing back.
	Pending(ctx context.Context, maxEvents int, maxBytes int64) ([]Append, error)
	// Settle settles the appends in one transaction: the published ones are deleted (their
	// events stay counted in the store's statistics); a Hold records the hold of its stream
	// and keeps the append; Behind keeps the append behind its stream's hold, which later
	// reads then pass over until the hold is released.
	Settle(ctx context.Context, settled []Settlement) error
	// Backlog measures what the outbox still holds.
	Backlog(ctx context.Context) (Backlog, error)
	// Reconcile returns to the flow the appends kept behind a hold that no longer exists (one
	// deleted by hand rather than released), and reports how many it returned.
	Reconcile(ctx context.Context) (int64, error)
	// Lost reports whether the session broke, and the lock with it.
	Lost() bool
	// Close ends the session, which releases the lock.
	Close()
}

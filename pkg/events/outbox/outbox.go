// Package outbox holds the types that cross between an event store's transactional outbox and
// the relay that publishes it: an append waiting to be published, how the relay settled it,
// the backlog's figures, and the publishing session through which all of that goes.
//
// The store that owns the outbox table implements Session (pkg/events/postgres); the relay
// defines, where it uses it, the small interface that hands one out (relay.Outbox). Like
// pkg/events, this package depends on the standard library and pkg/events only: never on pgx,
// kafka-go or any service.
package outbox

import (
	"context"
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
	Head   int64
	Events []events.Envelope
}

// Settlement is what became of one append the relay read: published, or, with a Reason, moved
// aside because it can never be published as it is.
type Settlement struct {
	StreamID     string
	FirstVersion int64
	Reason       string // empty: published
}

// Backlog is what the outbox still holds.
type Backlog struct {
	Appends int64 // appends not yet settled
	// OldestAppend is the age of the oldest of them (0 when there are none).
	OldestAppend time.Duration
	// OldestTransaction is how long the database's oldest open transaction (other than the
	// session's own) has been running: it does not hold the relay back, but it keeps vacuum
	// from reclaiming settled rows.
	OldestTransaction time.Duration
}

// Session is the one publishing relay's hold on the outbox: the lock that makes it the
// publisher and the database session its reads and settlements go through. If that session
// breaks, the lock goes with it, and so does every later call.
type Session interface {
	// Pending reads a window of the committed appends in the outbox, oldest transaction first:
	// those that start within the first maxEvents events, so at least one whatever its size,
	// and the last may run past the budget. Each comes with its events and its stream's Head,
	// and the window is sorted by stream and version. An append that commits late, behind
	// appends already settled, is read by a later call: nothing is skipped, and an open
	// transaction holds nothing back.
	Pending(ctx context.Context, maxEvents int) ([]Append, error)
	// Settle removes the settled appends from the outbox in one transaction: the published
	// ones are deleted, the others moved aside with their reason. Their events stay counted
	// in the store's statistics.
	Settle(ctx context.Context, settled []Settlement) error
	// Backlog measures what the outbox still holds.
	Backlog(ctx context.Context) (Backlog, error)
	// Lost reports whether the session broke, and the lock with it.
	Lost() bool
	// Close ends the session, which releases the lock.
	Close()
}

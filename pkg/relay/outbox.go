package relay

import (
	"context"
	"time"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// Outbox is the transactional outbox as the relay uses it. The store that owns the outbox
// table implements it (postgres.Outbox, from Store.Outbox or postgres.NewOutbox), with every
// statement on the table; the relay holds none.
type Outbox interface {
	// Lead waits, trying every poll, until the caller holds the lock key that makes it the
	// one publisher among the relays sharing the outbox, and returns the session that holds
	// the lock: the relay reads and settles through it only. It returns ctx's error when ctx
	// ends first.
	Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error)
	// Listen calls wake whenever an append in another process says it wrote to the outbox,
	// until ctx ends or its session fails, and returns why it stopped.
	Listen(ctx context.Context, wake func()) error
}

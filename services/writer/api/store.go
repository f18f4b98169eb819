package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// Store is what the API needs of an event store, whichever it is (PostgreSQL, Redis,
// MongoDB): appends and reads, and idempotency keys recorded with the appends. What only some
// stores can do is optional, found by type assertion: pruning snapshots (snapshotPruner),
// measuring the appends left open on the all-stream (fenceWatcher), and the PostgreSQL
// pool that holds the schema catalog when Options.Catalog is not set (pooled).
type Store interface {
	events.Store
	events.IdempotencyStore
}

// snapshotPruner is a store that deletes superseded snapshots (SNAPSHOT_RETENTION_PERIOD).
type snapshotPruner interface {
	PruneSnapshots(ctx context.Context, retention time.Duration) (int64, error)
}

// fenceWatcher is a store whose open appends hold the all-stream back, and which measures
// them (the PostgreSQL store's WatchFences).
type fenceWatcher interface {
	WatchFences(ctx context.Context, every time.Duration)
}

// pooled is a store on PostgreSQL, whose pool holds the schema catalog as well.
type pooled interface {
	Pool() *pgxpool.Pool
}

// catalogOf is the database of the schema catalog: catalog when set, else the store's own
// PostgreSQL pool; nil when there is neither.
func catalogOf(store Store, catalog schema.DB) schema.DB {
	if catalog != nil {
		return catalog
	}
	if p, ok := store.(pooled); ok {
		return p.Pool()
	}
	return nil
}

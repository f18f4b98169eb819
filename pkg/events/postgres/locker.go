package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pressly/goose/v3/lock"
)

// MigrationLocker is a goose session lock that waits on pg_advisory_lock(id): a Migrate that
// finds another one running goes on the moment the lock is free (goose's own locker probes
// every few seconds), and gives up when its context ends. Each set of migrations (the event
// store's, a service's own) takes a lock id of its own.
func MigrationLocker(id int64) lock.SessionLocker { return blockingLocker{id} }

// EventStoreLockID is the advisory lock of the event store's migrations ("annalse").
const EventStoreLockID int64 = 0x616e6e616c7365

type blockingLocker struct{ id int64 }

func (l blockingLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `select pg_advisory_lock($1)`, l.id); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	return nil
}

func (l blockingLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, `select pg_advisory_unlock($1)`, l.id).Scan(&released); err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	if !released {
		return errors.New("migration unlock: the lock was not held")
	}
	return nil
}

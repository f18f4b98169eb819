package consume

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events/postgres"
)

type txKey struct{}

// Tx returns the transaction of the PostgresUnit that ctx runs in, or nil outside one.
func Tx(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(txKey{}).(pgx.Tx)
	return tx
}

// WithTx returns a context that carries tx, for handlers run outside the runtime (a rebuild,
// a test) that read it with Tx.
func WithTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// PostgresUnit runs each unit of work in one transaction of pool, which handlers reach with
// Tx(ctx). The transaction commits when the unit's work returns nil and rolls back otherwise.
// A failure of the database rather than of the event (no connection, a connection lost in the
// middle, a deadlock, a serialization failure, a cancelled statement, a read-only server, a
// full disk) comes back Unavailable, so that the runtime pauses and tries again instead of
// dead-lettering the event; data the server refuses comes back Permanent. The commit's errors
// are marked by PostgresError; the work's are judged on the server's word alone
// (postgres.ServerTransient), so that an end of file or a deadline of something else the
// handler called is not taken for the database's.
//
// The transaction begins with the work's first statement or batch, in the same round trip
// (pgx.Batch.BeginTx), rather than with a round trip of its own; a unit whose work runs no
// statement begins and commits nothing. A failed begin comes back Unavailable, whatever the
// work made of it. What cannot carry the begin along (a statement with pgx options other than
// a QueryRewriter, an Exec without arguments, a savepoint, CopyFrom, Prepare, LargeObjects,
// Conn) begins the transaction on its own first.
func PostgresUnit(pool *pgxpool.Pool) Unit {
	return func(ctx context.Context, fn func(ctx context.Context) error) error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return Unavailable(fmt.Errorf("begin: %w", err))
		}
		// A connection left in a transaction (a rollback that failed) is closed, not reused.
		defer conn.Release()
		tx := &lazyTx{ctx: ctx, conn: conn.Conn()}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		err = fn(WithTx(ctx, tx))
		if tx.beginErr != nil {
			return Unavailable(fmt.Errorf("begin: %w", tx.beginErr))
		}
		if err != nil {
			switch {
			case IsUnavailable(err) || IsPermanent(err):
				return err
			case tx.conn.IsClosed() || postgres.ServerTransient(err):
				return Unavailable(err)
			case postgres.DataException(err):
				return Permanent(err)
			}
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			if tx.conn.IsClosed() {
				return Unavailable(fmt.Errorf("commit: %w", err))
			}
			return PostgresError(fmt.Errorf("commit: %w", err))
		}
		return nil
	}
}

// PostgresError marks an error of PostgreSQL for the runtime, by package postgres's
// classifiers, the one rule of every consumer: a failure of the server or of the moment
// (postgres.Transient) is Unavailable, so the group pauses and tries again, however long that
// takes, and no event is dead-lettered for it; data the server refuses
// (postgres.DataException) is Permanent, so the event is dead-lettered at once; anything else
// is returned as it is, an ordinary failure that is retried Config.Attempts times. An error
// marked before keeps its mark. PostgresError(nil) is nil.
func PostgresError(err error) error {
	switch {
	case err == nil || IsUnavailable(err) || IsPermanent(err):
		return err
	case postgres.Transient(err):
		return Unavailable(err)
	case postgres.DataException(err):
		return Permanent(err)
	}
	return err
}

// Inbox records which events a consumer group has applied, in the annals_inbox table, in the
// same transaction as the effect, so that a redelivered event is recognised and skipped:
// exactly-once effects on top of at-least-once delivery.
type Inbox struct {
	Group string
}

// Claim records the event as applied by the group within tx. It returns false when the
// event was recorded before (the caller skips its effect); the record becomes durable when
// tx commits, together with the effect.
func (in Inbox) Claim(ctx context.Context, tx pgx.Tx, eventID uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, claimSQL, in.Group, [16]byte(eventID))
	if err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const claimSQL = `insert into annals_inbox (group_name, event_id) values ($1, $2) on conflict do nothing`

// QueueClaim queues on b the statement of Claim, for a handler that sends it in one round trip
// with statements of its own instead of claiming before it runs (Middleware); b must go to
// the transaction of the effect. Once b's results are read (its Close), *fresh tells whether
// the event was not recorded before, as Claim's result does.
func (in Inbox) QueueClaim(b *pgx.Batch, eventID uuid.UUID, fresh *bool) {
	b.Queue(claimSQL, in.Group, [16]byte(eventID)).Exec(func(tag pgconn.CommandTag) error {
		*fresh = tag.RowsAffected() == 1
		return nil
	})
}

const claimAllSQL = `insert into annals_inbox (group_name, event_id) select $1, unnest($2::uuid[]) on conflict do nothing`

// ClaimAll records the events as applied by the group within tx, in one statement, and
// returns how many of them were not recorded before.
func (in Inbox) ClaimAll(ctx context.Context, tx pgx.Tx, eventIDs []uuid.UUID) (int, error) {
	tag, err := tx.Exec(ctx, claimAllSQL, in.Group, uuidBytes(eventIDs))
	if err != nil {
		return 0, fmt.Errorf("inbox: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// QueueClaimNew queues on b a statement that records the events as applied by the group, for
// a handler that applies them only when none was recorded before, as a BatchHandler does; b
// must go to a transaction. When any was, the statement fails with a unique violation that
// IsClaimedBefore recognises, and the transaction is aborted. Unlike ClaimAll's ON CONFLICT,
// it spares the server a search of the index before each insert, a speculative insertion and
// its confirmation.
func (in Inbox) QueueClaimNew(b *pgx.Batch, eventIDs []uuid.UUID) {
	b.Queue(`insert into annals_inbox (group_name, event_id) select $1, unnest($2::uuid[])`, in.Group, uuidBytes(eventIDs))
}

// IsClaimedBefore reports whether err is the failure of QueueClaimNew's statement because an
// event was recorded before.
func IsClaimedBefore(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "annals_inbox_pkey"
}

// uuidBytes converts ids for pgx, which encodes [16]byte as a uuid directly; a uuid.UUID it
// encodes through its driver.Valuer, as text that it parses again, at several times the cost.
func uuidBytes(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Middleware skips messages whose event the group has applied before; it claims the others
// in the transaction of the PostgresUnit the handler runs in (an error outside one).
func (in Inbox) Middleware() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			tx := Tx(ctx)
			if tx == nil {
				return Permanent(fmt.Errorf("inbox: %s runs outside a PostgreSQL unit", m))
			}
			fresh, err := in.Claim(ctx, tx, m.Event.EventID)
			if err != nil || !fresh {
				return err
			}
			return next.Handle(ctx, m)
		})
	}
}

package consume

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
func PostgresUnit(pool *pgxpool.Pool) Unit {
	return func(ctx context.Context, fn func(ctx context.Context) error) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return fn(WithTx(ctx, tx))
		})
	}
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
	tag, err := tx.Exec(ctx,
		`insert into annals_inbox (group_name, event_id) values ($1, $2) on conflict do nothing`,
		in.Group, eventID)
	if err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	return tag.RowsAffected() == 1, nil
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

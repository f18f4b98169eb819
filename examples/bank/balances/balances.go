// Package balances is the bank's read model of account balances in PostgreSQL, kept by a
// consumer group (pkg/consume) from the account events the relay publishes: its table and
// migrations, the statement each event applies, the consumer's handlers and the queries.
//
// Every event is applied in the transaction of the consumer's unit of work, together with the
// group's inbox record of it, so a redelivered event changes nothing. Each statement is also
// guarded by the stream's version: an event applied before changes nothing, an event whose
// predecessors are missing is refused with ErrGap (retried, then dead-lettered with its stream
// parked), and an event that cannot be read is a consume.Permanent error for the dead-letter
// topic. Nothing is ever half-applied.
//
// The package never writes to the event store and never applies an event out of its stream's
// order.
package balances

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the read model's migrations, recorded in a table of their own and
// serialised by an advisory lock of their own ("bankbal"), apart from the event store's.
var Migrations = postgres.MigrationSet{
	Name: "the balances read model", FS: migrations, Dir: "migrations",
	Table: "bank_balances_migrations", LockID: 0x62616e6b62616c,
}

// Migrate applies the read model's migrations that the database does not have yet. The
// consumer also needs the event store's (postgres.Migrate) for its inbox and blocked streams.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	_, err := Migrations.Up(ctx, pool, log)
	return err
}

// ErrGap: the event's stream has earlier events that the read model has not applied. The
// event is not applied; a retry applies it once the earlier ones have arrived.
var ErrGap = errors.New("gap in the stream")

// Balance is one account in the read model.
type Balance struct {
	AccountID           string      `json:"account_id"`
	Owner               string      `json:"owner"`
	OverdraftLimitCents int64       `json:"overdraft_limit_cents"`
	BalanceCents        int64       `json:"balance_cents"`
	Status              bank.Status `json:"status"`
	// Version is the stream version of the last event applied.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Projection keeps the balances read model.
type Projection struct {
	pool  *pgxpool.Pool
	inbox consume.Inbox
}

var (
	_ consume.Handler      = (*Projection)(nil)
	_ consume.BatchHandler = (*Projection)(nil)
)

// New returns the projection on pool for the consumer group named group. The read model and
// the event store must be migrated.
func New(pool *pgxpool.Pool, group string) *Projection {
	return &Projection{pool: pool, inbox: consume.Inbox{Group: group}}
}

// Consumer returns the projection's consumer: base (brokers, topics, decoder, dead-letter
// topic) in the projection's group, with each lane's share of a batch applied in one
// transaction (HandleBatch), each event recorded in the inbox in that transaction, and the
// streams blocked behind a dead letter kept in PostgreSQL so that they stay blocked across
// restarts.
func (p *Projection) Consumer(base consume.Config) (*consume.Consumer, error) {
	base.Group = p.inbox.Group
	base.Unit = consume.PostgresUnit(p.pool)
	base.Blocks = consume.PostgresBlocks(p.pool)
	base.Middleware = append([]consume.Middleware{p.inbox.Middleware()}, base.Middleware...)
	return consume.New(base, p)
}

// Handle applies one event in the transaction of the unit it runs in, behind the inbox
// middleware, which has skipped it if the group applied it before.
func (p *Projection) Handle(ctx context.Context, m *consume.Message) error {
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(fmt.Errorf("balances: %s runs outside a PostgreSQL unit", m))
	}
	return Apply(ctx, tx, m.Event)
}

// errNotClean sends a lane's share of a batch down the one-by-one path, which decides what
// the batch does not: events applied before, gaps, events that cannot be read.
var errNotClean = errors.New("balances: the batch does not apply cleanly; applying its events one by one")

// HandleBatch applies a lane's share of a batch in one round trip: the inbox claim of every
// event, then each event's statement. If any event was claimed before, does not apply
// exactly after its predecessor or cannot be read, it fails with nothing applied, and the
// runtime applies the events one by one through Handle.
func (p *Projection) HandleBatch(ctx context.Context, ms []*consume.Message) error {
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(errors.New("balances: a batch runs outside a PostgreSQL unit"))
	}
	b := &pgx.Batch{}
	ids := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		ids[i] = m.Event.EventID
	}
	p.inbox.QueueClaimNew(b, ids)
	for _, m := range ms {
		sql, args, err := statement(m.Event)
		if err != nil {
			return errNotClean
		}
		b.Queue(sql, args...)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		if consume.IsClaimedBefore(err) {
			return errNotClean
		}
		return fmt.Errorf("balances: %w", err)
	}
	for range ms {
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("balances: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errNotClean
		}
	}
	return br.Close()
}

// Apply applies one event to the read model within tx, guarded by its stream's version.
func Apply(ctx context.Context, tx pgx.Tx, e events.Envelope) error {
	sql, args, err := statement(e)
	if err != nil {
		return consume.Permanent(err)
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("balances: apply %s: %w", e.Type, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var version int64
	err = tx.QueryRow(ctx, `select version from bank_balances where account_id = $1`, accountID(e)).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		version = -1
	case err != nil:
		return fmt.Errorf("balances: apply %s: %w", e.Type, err)
	}
	if version >= e.Version {
		return nil // applied before
	}
	return fmt.Errorf("balances: %s version %d after version %d: %w", e.StreamID, e.Version, version, ErrGap)
}

// statement returns the SQL that applies e when the row is at the event's previous version.
func statement(e events.Envelope) (string, []any, error) {
	if e.Category != bank.Category || !strings.HasPrefix(e.StreamID, bank.Category+"-") {
		return "", nil, fmt.Errorf("balances: %s is not an account stream", e.StreamID)
	}
	id := accountID(e)
	at := e.RecordedAt
	switch e.Type {
	case bank.EventAccountOpened:
		var d bank.AccountOpened
		if err := decode(e, &d); err != nil {
			return "", nil, err
		}
		if e.Version != 0 || d.AccountID != id {
			return "", nil, fmt.Errorf("balances: %s at version %d of %s", e.Type, e.Version, e.StreamID)
		}
		return `insert into bank_balances (account_id, owner, overdraft_limit_cents, balance_cents, status, version, updated_at)
			values ($1, $2, $3, 0, 'open', 0, $4) on conflict do nothing`,
			[]any{id, d.Owner, d.OverdraftLimitCents, at}, nil
	case bank.EventMoneyDeposited, bank.EventMoneyWithdrawn:
		var d bank.MoneyDeposited // the same shape as MoneyWithdrawn
		if err := decode(e, &d); err != nil {
			return "", nil, err
		}
		if d.AmountCents <= 0 {
			return "", nil, fmt.Errorf("balances: %s of %d cents", e.Type, d.AmountCents)
		}
		delta := d.AmountCents
		if e.Type == bank.EventMoneyWithdrawn {
			delta = -delta
		}
		return `update bank_balances set balance_cents = balance_cents + $2, version = $3, updated_at = $4
			where account_id = $1 and version = $3 - 1`,
			[]any{id, delta, e.Version, at}, nil
	case bank.EventAccountClosed:
		return `update bank_balances set status = 'closed', version = $2, updated_at = $3
			where account_id = $1 and version = $2 - 1`,
			[]any{id, e.Version, at}, nil
	}
	return "", nil, fmt.Errorf("balances: unknown event type %q", e.Type)
}

func accountID(e events.Envelope) string { return strings.TrimPrefix(e.StreamID, bank.Category+"-") }

func decode(e events.Envelope, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("balances: %s data: %w", e.Type, err)
	}
	return nil
}

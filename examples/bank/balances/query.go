package balances

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/pkg/events"
)

// MaxList is the most balances List returns at once.
const MaxList = 100

const columns = `account_id, owner, overdraft_limit_cents, balance_cents, status, version, updated_at`

func scan(row pgx.CollectableRow) (Balance, error) {
	var b Balance
	err := row.Scan(&b.AccountID, &b.Owner, &b.OverdraftLimitCents, &b.BalanceCents, &b.Status, &b.Version, &b.UpdatedAt)
	b.UpdatedAt = b.UpdatedAt.UTC()
	return b, err
}

// Get returns the balance of an account; events.ErrNotFound when the read model has none
// (the account does not exist, or its opening has not been applied yet).
func (p *Projection) Get(ctx context.Context, accountID string) (Balance, error) {
	rows, _ := p.pool.Query(ctx, `select `+columns+` from bank_balances where account_id = $1`, accountID)
	b, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, fmt.Errorf("balance of account %s: %w", accountID, events.ErrNotFound)
	}
	if err != nil {
		return Balance{}, fmt.Errorf("balance of account %s: %w", accountID, err)
	}
	return b, nil
}

// List returns up to limit balances (at most MaxList) in account id order, starting after the
// account id after ("" from the start).
func (p *Projection) List(ctx context.Context, after string, limit int) ([]Balance, error) {
	limit = min(max(limit, 1), MaxList)
	rows, _ := p.pool.Query(ctx, `select `+columns+` from bank_balances where account_id > $1 order by account_id limit $2`, after, limit)
	bs, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("list balances: %w", err)
	}
	return bs, nil
}

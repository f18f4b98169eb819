package readmodel

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PointerTable is the one-row table that names the live generation of the read models.
const PointerTable = "annals_proj_generation"

// UsersTable and OrdersTable name the read-model tables of generation n.
func UsersTable(n int) string  { return fmt.Sprintf("annals_proj_users_g%d", n) }
func OrdersTable(n int) string { return fmt.Sprintf("annals_proj_orders_g%d", n) }

// generationTable matches the tables of every generation, with the generation as its group.
var generationTable = regexp.MustCompile(`^annals_proj_(?:users|orders)_g([0-9]+)$`)

// generation holds the statements on the tables of one generation, built once.
type generation struct {
	n       int
	users   string
	orders  string
	apply   [numKinds]string
	version [2]string // select a row's version, by table
}

var generations sync.Map // int -> *generation

func generationOf(n int) *generation {
	if g, ok := generations.Load(n); ok {
		return g.(*generation)
	}
	g := &generation{n: n, users: UsersTable(n), orders: OrdersTable(n)}
	r := strings.NewReplacer("{users}", g.users, "{orders}", g.orders)
	for k := range numKinds {
		g.apply[k] = r.Replace(applySQL[k])
	}
	g.version[usersTable] = "select version from " + g.users + " where id = $1"
	g.version[ordersTable] = "select version from " + g.orders + " where id = $1"
	actual, _ := generations.LoadOrStore(n, g)
	return actual.(*generation)
}

// querier is what a pool, a connection and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// liveGeneration reads the pointer. With share, it holds the pointer row FOR SHARE until the
// transaction ends, so that a switch (which takes it FOR UPDATE) waits for the transaction,
// and the transaction waits for a switch in progress and then sees the new generation.
func liveGeneration(ctx context.Context, q querier, share bool) (*generation, error) {
	sql := "select generation from " + PointerTable
	if share {
		sql += " for share"
	}
	var n int
	if err := q.QueryRow(ctx, sql).Scan(&n); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, errors.New("read models: the generation pointer is empty")
		}
		if isUndefinedTable(err) {
			return nil, fmt.Errorf("read models are not migrated (run annals projector migrate): %w", err)
		}
		return nil, fmt.Errorf("read the live generation: %w", err)
	}
	return generationOf(n), nil
}

// isUndefinedTable reports whether err is PostgreSQL's undefined_table: for a query, a
// generation dropped after the query read the pointer.
func isUndefinedTable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "42P01"
}

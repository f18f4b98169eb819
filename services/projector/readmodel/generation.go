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

	"github.com/annals-dev/annals/pkg/events/postgres"
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
	// The batch path's statements; see fold.go.
	readUsers, readOrders, insertUsers, updateUsers, insertOrders, updateOrders string
}

var generations sync.Map // int -> *generation

func generationOf(n int) *generation {
	if g, ok := generations.Load(n); ok {
		return g.(*generation)
	}
	actual, _ := generations.LoadOrStore(n, newGeneration(n, UsersTable(n), OrdersTable(n)))
	return actual.(*generation)
}

// newGeneration builds the statements on the tables users and orders, which have the columns
// of a generation's tables.
func newGeneration(n int, users, orders string) *generation {
	g := &generation{n: n, users: users, orders: orders}
	r := strings.NewReplacer("{users}", g.users, "{orders}", g.orders)
	for k := range numKinds {
		g.apply[k] = r.Replace(applySQL[k])
	}
	g.readUsers, g.readOrders = r.Replace(readUsersSQL), r.Replace(readOrdersSQL)
	g.insertUsers, g.updateUsers = r.Replace(insertUsersSQL), r.Replace(updateUsersSQL)
	g.insertOrders, g.updateOrders = r.Replace(insertOrdersSQL), r.Replace(updateOrdersSQL)
	g.version[usersTable] = "select version from " + g.users + " where id = $1"
	g.version[ordersTable] = "select version from " + g.orders + " where id = $1"
	return g
}

// querier is what a pool, a connection and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// switchLockClass is the first key of the transaction-level advisory lock that keeps applies
// and a rebuild's switch apart; the second is a hash of the schema, as for the rebuild's lock.
const switchLockClass = 0x616e6e67 // "anng"

// Statements of the switch lock. Applies take it shared, which costs no more than an entry in
// the lock table: unlike a row lock on the pointer (FOR SHARE), it writes nothing, so
// concurrent applies do not build multixacts on the pointer row. The switch takes it
// exclusively.
const (
	lockSharedSQL    = `select pg_advisory_xact_lock_shared($1, hashtext(current_schema()))`
	lockExclusiveSQL = `select pg_advisory_xact_lock($1, hashtext(current_schema()))`
	readPointerSQL   = `select generation from ` + PointerTable
)

// liveGeneration reads the pointer, without locks: what queries do.
func liveGeneration(ctx context.Context, q querier) (*generation, error) {
	return scanGeneration(q.QueryRow(ctx, readPointerSQL))
}

// lockedGeneration starts a transaction that applies events; see queueLockedGeneration.
func lockedGeneration(ctx context.Context, tx pgx.Tx) (*generation, error) {
	var g *generation
	b := &pgx.Batch{}
	queueLockedGeneration(b, &g)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return g, nil
}

// queueLockedGeneration queues on b the statements that start a transaction that applies
// events, and sets *g to the live generation once b's results have been read.
//
// They take the switch lock shared until the transaction ends, and then read the pointer: a
// switch, which takes the lock exclusively, waits for the transaction to end, and the
// transaction waits for a switch in progress. The pointer is read by a statement of its own,
// after the lock is granted, so that in READ COMMITTED its snapshot sees the switch that the
// lock may have waited for; the transaction must therefore not be REPEATABLE READ or
// SERIALIZABLE with a snapshot taken before.
func queueLockedGeneration(b *pgx.Batch, g **generation) {
	b.Queue(lockSharedSQL, switchLockClass)
	b.Queue(readPointerSQL).QueryRow(func(row pgx.Row) error {
		var err error
		*g, err = scanGeneration(row)
		return err
	})
}

func scanGeneration(row pgx.Row) (*generation, error) {
	var n int
	if err := row.Scan(&n); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, errors.New("read models: the generation pointer is empty")
		}
		if postgres.UndefinedTable(err) { // for a query: a generation dropped after it read the pointer
			return nil, fmt.Errorf("read models are not migrated (run annals projector migrate): %w", err)
		}
		return nil, fmt.Errorf("read the live generation: %w", err)
	}
	return generationOf(n), nil
}

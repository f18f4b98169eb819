package consume_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// unitTable is a pool on a schema of its own with a table t(id int primary key), and the
// round trips of the pool.
func unitTable(t *testing.T) (*pgxpool.Pool, *testenv.RoundTrips) {
	t.Helper()
	_, schema := testenv.SchemaPool(t)
	pool, rt := testenv.CountingPool(t, schema)
	if _, err := pool.Exec(context.Background(), `create table t (id int primary key)`); err != nil {
		t.Fatal(err)
	}
	return pool, rt
}

func ids(t *testing.T, pool *pgxpool.Pool) []int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select id from t order by id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var errWork = errors.New("the work failed")

// TestPostgresUnit_Transaction: whatever a unit's first statement is, everything the unit runs
// is one transaction, which commits when the work succeeds and leaves nothing when it fails.
// A statement run before the begin, or outside the transaction, would stay after the failure.
func TestPostgresUnit_Transaction(t *testing.T) {
	ctx := context.Background()
	firsts := []struct {
		name string
		run  func(ctx context.Context, tx pgx.Tx, id int) error
	}{
		{"Exec", func(ctx context.Context, tx pgx.Tx, id int) error {
			_, err := tx.Exec(ctx, `insert into t values ($1)`, id)
			return err
		}},
		{"ExecWithoutArguments", func(ctx context.Context, tx pgx.Tx, id int) error {
			_, err := tx.Exec(ctx, fmt.Sprintf(`insert into t values (%d); insert into t values (%d)`, id, id+1000))
			return err
		}},
		{"ExecWithExecMode", func(ctx context.Context, tx pgx.Tx, id int) error {
			_, err := tx.Exec(ctx, `insert into t values ($1)`, pgx.QueryExecModeSimpleProtocol, id)
			return err
		}},
		{"Query", func(ctx context.Context, tx pgx.Tx, id int) error {
			rows, err := tx.Query(ctx, `insert into t values ($1) returning id`, id)
			if err != nil {
				return err
			}
			got, err := pgx.CollectOneRow(rows, pgx.RowTo[int])
			if err == nil && got != id {
				err = fmt.Errorf("returned %d, want %d", got, id)
			}
			return err
		}},
		{"QueryRow", func(ctx context.Context, tx pgx.Tx, id int) error {
			var got int
			err := tx.QueryRow(ctx, `insert into t values ($1) returning id`, id).Scan(&got)
			if err == nil && got != id {
				err = fmt.Errorf("returned %d, want %d", got, id)
			}
			return err
		}},
		{"SendBatch", func(ctx context.Context, tx pgx.Tx, id int) error {
			b := &pgx.Batch{}
			b.Queue(`insert into t values ($1)`, id)
			var got int
			b.Queue(`select count(*) from t where id = $1`, id).QueryRow(func(row pgx.Row) error { return row.Scan(&got) })
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			if got != 1 {
				return fmt.Errorf("the batch's second statement saw %d rows of its first", got)
			}
			return nil
		}},
		{"SendBatchRead", func(ctx context.Context, tx pgx.Tx, id int) error {
			b := &pgx.Batch{}
			b.Queue(`insert into t values ($1)`, id)
			b.Queue(`select id from t where id = $1`, id)
			br := tx.SendBatch(ctx, b)
			if br.Tx() != nil {
				return errors.New("the results of a batch without BeginTx have a transaction")
			}
			if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
				return fmt.Errorf("first result: %v, %v; want the insert's", tag, err)
			}
			var got int
			if err := br.QueryRow().Scan(&got); err != nil || got != id {
				return fmt.Errorf("second result: %d, %v; want %d", got, err, id)
			}
			return br.Close()
		}},
		{"CopyFrom", func(ctx context.Context, tx pgx.Tx, id int) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"id"}, pgx.CopyFromRows([][]any{{id}}))
			return err
		}},
		{"Savepoint", func(ctx context.Context, tx pgx.Tx, id int) error {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, `insert into t values ($1)`, id+2000); err != nil {
				return err
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `insert into t values ($1)`, id)
			return err
		}},
		{"Conn", func(ctx context.Context, tx pgx.Tx, id int) error {
			_, err := tx.Conn().Exec(ctx, `insert into t values ($1)`, id)
			return err
		}},
	}
	for _, first := range firsts {
		t.Run(first.name, func(t *testing.T) {
			pool, _ := unitTable(t)
			unit := consume.PostgresUnit(pool)
			err := unit(ctx, func(ctx context.Context) error {
				tx := consume.Tx(ctx)
				if err := first.run(ctx, tx, 1); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `insert into t values ($1)`, 2)
				if err != nil {
					return err
				}
				return errWork
			})
			if !errors.Is(err, errWork) {
				t.Fatalf("unit: %v, want the work's error", err)
			}
			if got := ids(t, pool); len(got) != 0 {
				t.Fatalf("after a failed unit the table has %v, want nothing", got)
			}
			err = unit(ctx, func(ctx context.Context) error {
				tx := consume.Tx(ctx)
				if err := first.run(ctx, tx, 1); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `insert into t values ($1)`, 2)
				return err
			})
			if err != nil {
				t.Fatalf("unit: %v", err)
			}
			got := ids(t, pool)
			if len(got) < 2 || got[0] != 1 || got[1] != 2 {
				t.Fatalf("after the unit the table has %v, want 1 and 2 among them", got)
			}
			for _, id := range got {
				if id >= 2000 {
					t.Errorf("the rolled back savepoint's row %d stayed", id)
				}
			}
		})
	}
}

// TestPostgresUnit_RoundTrips: the begin goes with the unit's first statement, and a unit that
// runs no statement sends nothing.
func TestPostgresUnit_RoundTrips(t *testing.T) {
	ctx := context.Background()
	pool, rt := unitTable(t)
	unit := consume.PostgresUnit(pool)
	for _, c := range []struct {
		name  string
		work  func(ctx context.Context) error
		trips int64
	}{
		{"NoStatement", func(context.Context) error { return nil }, 0},
		{"NoStatementFailing", func(context.Context) error { return errWork }, 0},
		{"OneStatement", func(ctx context.Context) error {
			_, err := consume.Tx(ctx).Exec(ctx, `insert into t values ($1)`, 7)
			return err
		}, 2}, // the begin with the statement, the commit
		{"OneBatch", func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue(`insert into t values ($1)`, 8)
			b.Queue(`insert into t values ($1)`, 9)
			return consume.Tx(ctx).SendBatch(ctx, b).Close()
		}, 2},
		{"TwoStatements", func(ctx context.Context) error {
			tx := consume.Tx(ctx)
			var n int
			if err := tx.QueryRow(ctx, `select count(*) from t where id > $1`, 0).Scan(&n); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `insert into t values ($1)`, 10+n)
			return err
		}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := rt.Trips()
			rt.Log()
			_ = unit(ctx, c.work)
			if got := rt.Trips() - before; got != c.trips {
				t.Errorf("%d round trips, want %d: %q", got, c.trips, rt.Log())
			}
		})
	}
}

// TestPostgresUnit_Errors: the classes of a unit's errors are those of pgx's transaction.
func TestPostgresUnit_Errors(t *testing.T) {
	ctx := context.Background()
	pool, _ := unitTable(t)
	unit := consume.PostgresUnit(pool)
	exec := func(sql string, args ...any) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := consume.Tx(ctx).Exec(ctx, sql, args...)
			return err
		}
	}
	t.Run("RefusedFirstStatement", func(t *testing.T) {
		// The server refuses to prepare it: the work's failure, neither unavailable nor permanent.
		err := unit(ctx, exec(`insert into no_such_table values ($1)`, 1))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P01" || consume.IsUnavailable(err) || consume.IsPermanent(err) {
			t.Errorf("got %v (unavailable %v, permanent %v), want the server's undefined_table as it is",
				err, consume.IsUnavailable(err), consume.IsPermanent(err))
		}
	})
	t.Run("ClientRefusedFirstStatement", func(t *testing.T) {
		// pgx refuses it before sending anything (a rewriter's failure, here a named argument
		// missing): the work's failure as pgx's transaction gives it, not a failed begin, which
		// would stall the group on the event for good.
		err := unit(ctx, exec(`insert into t values (@id)`, pgx.StrictNamedArgs{}))
		if err == nil || consume.IsUnavailable(err) || consume.IsPermanent(err) {
			t.Errorf("got %v (unavailable %v, permanent %v), want an ordinary failure",
				err, consume.IsUnavailable(err), consume.IsPermanent(err))
		}
		if got := ids(t, pool); len(got) != 0 {
			t.Errorf("the table has %v, want nothing", got)
		}
	})
	t.Run("DataException", func(t *testing.T) {
		err := unit(ctx, exec(`insert into t values (1 / $1::int)`, 0))
		if !consume.IsPermanent(err) {
			t.Errorf("division by zero: got %v, want it permanent", err)
		}
	})
	t.Run("AbortedAfterARefusedStatement", func(t *testing.T) {
		// The work swallows the failure of its first statement: the transaction is aborted all
		// the same, so its second statement fails, and its commit comes back a rollback.
		var second error
		err := unit(ctx, func(ctx context.Context) error {
			tx := consume.Tx(ctx)
			_, _ = tx.Exec(ctx, `insert into no_such_table values ($1)`, 1)
			_, second = tx.Exec(ctx, `insert into t values ($1)`, 1)
			return nil
		})
		var pe *pgconn.PgError
		if !errors.As(second, &pe) || pe.Code != "25P02" {
			t.Errorf("the second statement: %v, want in_failed_sql_transaction", second)
		}
		if !errors.Is(err, pgx.ErrTxCommitRollback) {
			t.Errorf("unit: %v, want pgx.ErrTxCommitRollback", err)
		}
		if got := ids(t, pool); len(got) != 0 {
			t.Errorf("the table has %v, want nothing", got)
		}
	})
	t.Run("CommitRolledBack", func(t *testing.T) {
		err := unit(ctx, func(ctx context.Context) error {
			tx := consume.Tx(ctx)
			if _, err := tx.Exec(ctx, `insert into t values ($1)`, 1); err != nil {
				return err
			}
			_, _ = tx.Exec(ctx, `insert into t values ($1)`, 1) // a unique violation, swallowed
			return nil
		})
		if !errors.Is(err, pgx.ErrTxCommitRollback) || consume.IsUnavailable(err) {
			t.Errorf("unit: %v, want pgx.ErrTxCommitRollback, not unavailable", err)
		}
		if got := ids(t, pool); len(got) != 0 {
			t.Errorf("the table has %v, want nothing", got)
		}
	})
	t.Run("LostConnectionAtTheFirstStatement", func(t *testing.T) {
		err := unit(ctx, exec(`select pg_terminate_backend(pg_backend_pid()) where $1`, true))
		if !consume.IsUnavailable(err) {
			t.Errorf("got %v, want it unavailable", err)
		}
	})
	t.Run("ConnAfterAFailedBegin", func(t *testing.T) {
		// The unit's context ends before its first statement (a drain timeout, say), so the
		// begin fails: a statement the work then runs on the connection, with a context of its
		// own, must not take effect outside any transaction. pgx closes a connection whose
		// begin failed; this holds it to that.
		uctx, cancel := context.WithCancel(ctx)
		var stmt error
		err := unit(uctx, func(ctx context.Context) error {
			cancel()
			_, stmt = consume.Tx(ctx).Conn().Exec(context.Background(), `insert into t values ($1)`, 1)
			return nil
		})
		if !consume.IsUnavailable(err) {
			t.Errorf("unit: %v, want it unavailable", err)
		}
		if stmt == nil {
			t.Error("the statement on the connection succeeded, want it refused")
		}
		if got := ids(t, pool); len(got) != 0 {
			t.Errorf("the table has %v, want nothing", got)
		}
	})
	t.Run("ClosedAfterTheUnit", func(t *testing.T) {
		var kept pgx.Tx
		if err := unit(ctx, func(ctx context.Context) error { kept = consume.Tx(ctx); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := kept.Exec(ctx, `insert into t values ($1)`, 1); !errors.Is(err, pgx.ErrTxClosed) {
			t.Errorf("a statement after the unit: %v, want pgx.ErrTxClosed", err)
		}
	})
}

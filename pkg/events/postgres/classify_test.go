package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// TestClassify: each SQLSTATE and connection failure the classifiers know, wrapped as a
// caller wraps it, and what each classifier says of it.
func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("append: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	refused := connectError(t, "postgres://annals@127.0.0.1:1/annals?connect_timeout=2")
	type want struct{ unreachable, transient, data, integrity bool }
	down := want{unreachable: true, transient: true}
	busy := want{transient: true}
	for _, tc := range []struct {
		name string
		err  error
		want want
	}{
		{"nil", nil, want{}},
		{"other", errors.New("boom"), want{}},
		{"08000 connection_exception", pg("08000"), down},
		{"08001 unable_to_connect", pg("08001"), down},
		{"08003 connection_does_not_exist", pg("08003"), down},
		{"08006 connection_failure", pg("08006"), down},
		{"08P01 protocol_violation", pg("08P01"), down},
		{"57P01 admin_shutdown", pg("57P01"), down},
		{"57P02 crash_shutdown", pg("57P02"), down},
		{"57P03 cannot_connect_now", pg("57P03"), down},
		{"53300 too_many_connections", pg("53300"), down},
		{"53100 disk_full", pg("53100"), busy},
		{"53200 out_of_memory", pg("53200"), busy},
		{"57014 query_canceled", pg("57014"), busy},
		{"57P04 database_dropped", pg("57P04"), busy},
		{"22021 character_not_in_repertoire", pg("22021"), want{data: true}},
		{"22P05 untranslatable_character", pg("22P05"), want{data: true}},
		{"22003 numeric_value_out_of_range", pg("22003"), want{data: true}},
		{"23505 unique_violation", pg("23505"), want{integrity: true}},
		{"23514 check_violation", pg("23514"), want{integrity: true}},
		{"40001 serialization_failure", pg("40001"), busy},
		{"40P01 deadlock_detected", pg("40P01"), busy},
		{"40003 statement_completion_unknown", pg("40003"), busy},
		{"40002 transaction_integrity_constraint_violation", pg("40002"), want{}},
		{"55P03 lock_not_available", pg("55P03"), busy},
		{"25006 read_only_sql_transaction", pg("25006"), busy},
		{"25P02 in_failed_sql_transaction", pg("25P02"), want{}},
		{"53400 configuration_limit_exceeded", pg("53400"), busy},
		{"58030 io_error", pg("58030"), busy},
		{"42P01 undefined_table", pg("42P01"), want{}},
		{"XX000 internal_error", pg("XX000"), want{}},
		{"malformed code", pg("08"), want{}},
		{"connection refused", refused, down},
		{"dial error", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, down},
		{"EOF", fmt.Errorf("read: %w", io.EOF), down},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), down},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), down},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), busy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := want{postgres.Unreachable(tc.err), postgres.Transient(tc.err),
				postgres.DataException(tc.err), postgres.IntegrityViolation(tc.err)}
			if got != tc.want {
				t.Errorf("%v: got %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}

// TestClassify_Server: errors as the real server and pgx return them.
func TestClassify_Server(t *testing.T) {
	pool := testenv.Pool(t)
	ctx := context.Background()
	t.Run("Deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := pool.Exec(ctx, `select pg_sleep(5)`)
		if !postgres.Unreachable(err) || !postgres.Transient(err) {
			t.Errorf("%v: want unreachable and transient", err)
		}
	})
	t.Run("StatementTimeout", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, `set local statement_timeout = '10ms'; select pg_sleep(5)`)
		if postgres.Unreachable(err) || !postgres.Transient(err) {
			t.Errorf("%v: want transient, not unreachable", err)
		}
	})
	t.Run("ReadOnly", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, `set transaction read only; create temporary table written (n int)`)
		if !postgres.Transient(err) || postgres.Unreachable(err) {
			t.Errorf("%v: want transient, not unreachable", err)
		}
	})
	t.Run("Deadlock", func(t *testing.T) {
		// Two transactions take two advisory locks in opposite orders: the server ends one.
		lock := func(tx pgx.Tx, key int64) error {
			_, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, key)
			return err
		}
		keys := [2]int64{time.Now().UnixNano(), time.Now().UnixNano() + 1}
		var txs [2]pgx.Tx
		for i := range txs {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if err := lock(tx, keys[i]); err != nil {
				t.Fatal(err)
			}
			txs[i] = tx
		}
		type result struct {
			i   int
			err error
		}
		results := make(chan result, 2)
		for i := range txs {
			go func() { results <- result{i, lock(txs[i], keys[1-i])} }()
		}
		// The server ends the loser's statement; the winner waits until the loser's
		// transaction ends (or has already got its lock, when the server released the loser's
		// at once).
		var err error
		for range 2 {
			r := <-results
			if r.err != nil {
				err = r.err
				_ = txs[r.i].Rollback(ctx)
			}
		}
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "40P01" || !postgres.Transient(err) || postgres.Unreachable(err) {
			t.Errorf("%v: want a transient 40P01, not unreachable", err)
		}
	})
	t.Run("NulByte", func(t *testing.T) {
		var s string
		err := pool.QueryRow(ctx, `select $1::text`, "a\x00b").Scan(&s)
		if !postgres.DataException(err) || postgres.Transient(err) {
			t.Errorf("%v: want a data exception, not transient", err)
		}
	})
}

// connectError is what connecting to url, where nothing listens, returns.
func connectError(tb testing.TB, url string) error {
	tb.Helper()
	conn, err := pgconn.Connect(context.Background(), url)
	if err == nil {
		_ = conn.Close(context.Background())
		tb.Fatalf("connected to %s", url)
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		tb.Fatalf("connect %s: %T %v, want a *pgconn.ConnectError", url, err, err)
	}
	return err
}

// TestServerDown: the server's own word that it is unreachable counts; an end of file, a
// network error or a deadline that a handler wraps from something else does not.
func TestServerDown(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("apply: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	refused := connectError(t, "postgres://annals@127.0.0.1:1/annals?connect_timeout=2")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"08006 connection_failure", pg("08006"), true},
		{"57P01 admin_shutdown", pg("57P01"), true},
		{"53300 too_many_connections", pg("53300"), true},
		{"connection refused", refused, true},
		{"23505 unique_violation", pg("23505"), false},
		{"a decoder's unexpected EOF", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), false},
		{"a decoder's EOF", fmt.Errorf("decode: %w", io.EOF), false},
		{"another service's network error", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"the handler's own deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := postgres.ServerDown(tc.err); got != tc.want {
				t.Errorf("ServerDown(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestConflictAndUndefinedTable: the two classifiers outside the fault of a dependency.
func TestConflictAndUndefinedTable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("save: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	for _, tc := range []struct {
		err                 error
		conflict, undefined bool
	}{
		{pg("40001"), true, false},
		{pg("40P01"), true, false},
		{pg("42P01"), false, true},
		{pg("23505"), false, false},
		{errors.New("boom"), false, false},
		{nil, false, false},
	} {
		if got := postgres.Conflict(tc.err); got != tc.conflict {
			t.Errorf("Conflict(%v) = %v, want %v", tc.err, got, tc.conflict)
		}
		if got := postgres.UndefinedTable(tc.err); got != tc.undefined {
			t.Errorf("UndefinedTable(%v) = %v, want %v", tc.err, got, tc.undefined)
		}
	}
}

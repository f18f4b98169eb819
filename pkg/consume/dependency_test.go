package consume_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// transientFailures are the SQLSTATEs a server answers for reasons of its own or of the
// moment, not of the statement: each must pause the group, never dead-letter an event.
var transientFailures = []struct{ code, name string }{
	{"40P01", "deadlock_detected"},
	{"40001", "serialization_failure"},
	{"57014", "query_canceled"},
	{"25006", "read_only_sql_transaction"},
	{"53100", "disk_full"},
}

// TestPostgresUnit_TransientErrorsPause injects each transient SQLSTATE into the unit of work
// of a consumer with an inbox: a trigger on the table the handler writes raises it more often
// than the group's attempts. Every event must end applied once, with nothing on the
// dead-letter topic. The last case has the trigger end its own session (pg_terminate_backend),
// the connection lost in the middle of a transaction.
func TestPostgresUnit_TransientErrorsPause(t *testing.T) {
	t.Parallel()
	const failures = 8 // twice the group's attempts and more
	raise := func(code string) string {
		return fmt.Sprintf(`raise exception 'injected failure' using errcode = '%s'`, code)
	}
	cases := make([]struct{ name, action string }, 0, len(transientFailures)+1)
	for _, f := range transientFailures {
		cases = append(cases, struct{ name, action string }{f.code + "_" + f.name, raise(f.code)})
	}
	cases = append(cases, struct{ name, action string }{"terminated", `perform pg_terminate_backend(pg_backend_pid())`})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := migrated(t)
			ctx := context.Background()
			// The sequence counts the trigger's calls across rolled-back transactions.
			if _, err := pool.Exec(ctx, fmt.Sprintf(`
				create table applied (event_id uuid not null, stream_id text not null, version bigint not null);
				create sequence injected;
				create function inject() returns trigger language plpgsql as $$
				begin
					if nextval('injected') <= %d then %s; end if;
					return new;
				end $$;
				create trigger inject before insert on applied for each row execute function inject();`,
				failures, tc.action)); err != nil {
				t.Fatal(err)
			}
			topic, dlq := testenv.Topic(t, 2), testenv.Topic(t, 1)
			recs := streams("tx", 4, 5)
			publish(t, topic, recs)
			group := testenv.UniqueName(t)
			cfg := config(t, []string{topic}, dlq, group)
			cfg.Attempts = 3
			cfg.Lanes = 1 // every failure falls on the same message
			cfg.Unit = consume.PostgresUnit(pool)
			cfg.Middleware = []consume.Middleware{consume.Inbox{Group: group}.Middleware()}
			h := consume.HandlerFunc(func(ctx context.Context, m *consume.Message) error {
				_, err := consume.Tx(ctx).Exec(ctx, `insert into applied (event_id, stream_id, version) values ($1, $2, $3)`,
					m.Event.EventID, m.Event.StreamID, m.Event.Version)
				return err
			})
			r := start(t, cfg, h)
			count := func(sql string) int {
				var n int
				if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			waitFor(t, 60*time.Second, "the group to commit every event", func() bool { return caughtUp(t, group, topic, 2) })
			r.halt(t)
			if n := len(dead(t, dlq, 1)); n != 0 {
				t.Errorf("%d dead letters after %s, want none", n, tc.name)
			}
			if got, distinct := count(`select count(*) from applied`), count(`select count(distinct event_id) from applied`); got != len(recs) || distinct != len(recs) {
				t.Errorf("%d rows applied (%d events), want each of the %d events once", got, distinct, len(recs))
			}
			if n := count(`select last_value from injected`); n <= failures {
				t.Errorf("the trigger ran %d times, want more than the %d failures it injects", n, failures)
			}
		})
	}
}

// TestPostgresError: how each kind of database failure is marked for the runtime.
func TestPostgresError(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("apply: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	const (
		pause  = "unavailable"
		poison = "permanent"
		retry  = "ordinary"
	)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"08006 connection_failure", pg("08006"), pause},
		{"57P01 admin_shutdown", pg("57P01"), pause},
		{"53300 too_many_connections", pg("53300"), pause},
		{"55P03 lock_not_available", pg("55P03"), pause},
		{"lost connection", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), pause},
		{"22P05 untranslatable_character", pg("22P05"), poison},
		{"23505 unique_violation", pg("23505"), retry},
		{"42P01 undefined_table", pg("42P01"), retry},
		{"XX000 internal_error", pg("XX000"), retry},
		{"not a database error", errors.New("boom"), retry},
		{"marked permanent before", consume.Permanent(pg("40001")), poison},
	}
	for _, f := range transientFailures {
		cases = append(cases, struct {
			name string
			err  error
			want string
		}{f.code + " " + f.name, pg(f.code), pause})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := consume.PostgresError(tc.err)
			got := retry
			switch {
			case consume.IsUnavailable(err) && consume.IsPermanent(err):
				got = "both"
			case consume.IsUnavailable(err):
				got = pause
			case consume.IsPermanent(err):
				got = poison
			}
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("PostgresError(%v) is %s (%v), want %s wrapping it", tc.err, got, err, tc.want)
			}
		})
	}
	if consume.PostgresError(nil) != nil {
		t.Error("PostgresError(nil) is not nil")
	}
}

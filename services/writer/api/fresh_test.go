package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
)

// statementLog records the statements a pool sends.
type statementLog struct {
	mu  sync.Mutex
	sql []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	l.sql = append(l.sql, d.SQL)
	l.mu.Unlock()
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// since returns the statements sent after the first n.
func (l *statementLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sql[n:]...)
}

func (l *statementLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sql)
}

func TestCreate_ServerPickedIDReadsNoStream(t *testing.T) {
	log := &statementLog{}
	e := newEnv(t, func(s *setup) {
		s.onPool = func(tb testing.TB, pool *pgxpool.Pool, s *setup) {
			// The store's own pool, on the same schema, logs its statements.
			schema := ""
			if err := pool.QueryRow(context.Background(), "select current_schema()").Scan(&schema); err != nil {
				tb.Fatal(err)
			}
			cfg, err := pgxpool.ParseConfig(testenv.SchemaURL(tb, schema))
			if err != nil {
				tb.Fatal(err)
			}
			cfg.ConnConfig.Tracer = log
			s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(s.pool.Close)
		}
	})
	reads := func(sql []string) []string {
		var out []string
		for _, q := range sql {
			if !strings.Contains(q, "insert into annals_events") {
				out = append(out, q)
			}
		}
		return out
	}

	t.Run("WithoutID", func(t *testing.T) {
		n := log.len()
		e.do(t, "POST", "/v1/users", map[string]any{"email": "ada@example.com", "name": "Ada"}).ok(t, http.StatusCreated)
		if got := reads(log.since(n)); len(got) != 0 {
			t.Errorf("a create with an id the server picked read the store: %q", got)
		}
	})
	t.Run("WithID", func(t *testing.T) {
		n := log.len()
		e.do(t, "POST", "/v1/users", map[string]any{"id": "0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "email": "ada@example.com", "name": "Ada"}).ok(t, http.StatusCreated)
		if got := reads(log.since(n)); len(got) == 0 {
			t.Error("a create with the client's id did not look for its stream")
		}
	})
}

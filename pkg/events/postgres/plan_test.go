package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/testenv"
)

// TestPlans_IndexesOnEmptyTables: the publishing session's statements, planned once as a
// generic plan while the tables are empty (a new deployment), must walk the indexes, because
// that plan is kept for as long as the relay leads and the tables grow under it. Without the
// session's settings PostgreSQL picks a scan of the events table for the read; the test logs
// it if that stops being so, as the settings would then no longer be what keeps the plans
// on the indexes.
func TestPlans_IndexesOnEmptyTables(t *testing.T) {
	pool, _ := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	statements := map[string]struct {
		sql  string
		args string
	}{
		"read":      {readSQL, "(5000, 16777216)"},
		"settle":    {settleSQL, "('{order-1}', '{0}')"},
		"hold":      {holdSQL, "('{order-1}', '{0}', '{\"no schema\"}', '{order-1,order-2}', '{0,3}')"},
		"reconcile": {reconcileSQL, ""},
	}
	explain := func(t *testing.T, settings string) map[string]string {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			conn.Conn().Close(ctx) // its settings are not for the pool's other users
			conn.Release()
		}()
		if _, err := conn.Exec(ctx, `set plan_cache_mode = force_generic_plan`+settings); err != nil {
			t.Fatal(err)
		}
		plans := map[string]string{}
		for name, st := range statements {
			if _, err := conn.Exec(ctx, "prepare "+name+" as "+st.sql); err != nil {
				t.Fatalf("prepare %s: %v", name, err)
			}
			rows, err := conn.Query(ctx, "explain execute "+name+st.args)
			if err != nil {
				t.Fatalf("explain %s: %v", name, err)
			}
			var lines []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			plans[name] = strings.Join(lines, "\n")
		}
		return plans
	}

	for name, plan := range explain(t, "; "+indexPlansOnly) {
		for _, bad := range []string{"Seq Scan on annals_", "Hash Join", "Merge Join"} {
			if strings.Contains(plan, bad) {
				t.Errorf("%s's generic plan on empty tables has a %s:\n%s", name, bad, plan)
			}
		}
	}
	if plan := explain(t, "")["read"]; !strings.Contains(plan, "Seq Scan on annals_events") {
		t.Logf("without the settings, the read's generic plan on empty tables no longer scans the events table:\n%s", plan)
	}
}

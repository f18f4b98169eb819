package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// TestFencesCmd: an append left open holds the all-stream; `annals fences list` shows its
// backend and where it holds, `annals fences end PID` ends it, and the all-stream moves on.
func TestFencesCmd(t *testing.T) {
	ctx := context.Background()
	pool, schema := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"DATABASE_URL": url + sep + "search_path=" + schema}
	store := postgres.New(pool, postgres.Options{})

	if code, out, errOut := runCLI(t, env, "fences", "list"); code != 0 || !strings.Contains(out, "no append is open") {
		t.Fatalf("fences list on an idle store = %d: %s %s", code, out, errOut)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int32
	if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	e := events.Event{Type: "OrderCreated", Data: []byte(`{}`)}
	open, err := store.AppendTx(ctx, tx, "order-open", events.NoStream(), []events.Event{e}, events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	later, err := store.Append(ctx, "order-later", events.NoStream(), []events.Event{e}, events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, env, "fences", "list")
	if code != 0 || !strings.Contains(out, strconv.Itoa(int(pid))) || !strings.Contains(out, "idle in transaction") {
		t.Fatalf("fences list = %d: %s %s; want backend %d, idle in transaction", code, out, errOut, pid)
	}
	code, out, errOut = runCLI(t, env, "fences", "list", "-json")
	var listed []postgres.Fence
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != 1 || listed[0].Floor != open.FirstPosition-1 {
		t.Fatalf("fences list -json = %d: %s %s (%v); want one fence with floor %d", code, out, errOut, err, open.FirstPosition-1)
	}

	if code, _, errOut := runCLI(t, env, "fences", "end", "x"); code != 2 {
		t.Errorf("fences end x = %d (%s), want 2", code, errOut)
	}
	if code, out, errOut := runCLI(t, env, "fences", "end", strconv.Itoa(int(pid))); code != 0 || !strings.Contains(out, "ended backend") {
		t.Fatalf("fences end = %d: %s %s", code, out, errOut)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("the ended transaction committed")
	}
	page, err := store.ReadAll(ctx, events.AllQuery{Limit: 10})
	if err != nil || len(page) != 1 || page[0].GlobalPosition != later.FirstPosition {
		t.Errorf("after the end the all-stream reads %v, %v; want the later append alone", page, err)
	}
	if code, _, errOut := runCLI(t, env, "fences", "end", strconv.Itoa(int(pid))); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("ending it again = %d: %s, want 1 and not found", code, errOut)
	}
}

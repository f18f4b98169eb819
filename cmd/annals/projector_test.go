package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

func runProjector(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	loadConfig := func() (*config.Config, error) {
		return config.Load(config.ResolvePath("../../config/event_sourcing.tsk", lookup), lookup)
	}
	var out strings.Builder
	err := projectorCmd(context.Background(), args, loadConfig, &out)
	return out.String(), err
}

func TestProjectorCmd(t *testing.T) {
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"DATABASE_URL": url + sep + "search_path=" + schema}

	out, err := runProjector(t, env, "migrate")
	if err != nil || !strings.Contains(out, "applied 00001") {
		t.Fatalf("projector migrate: %v\n%s", err, out)
	}
	out, err = runProjector(t, env, "migrate")
	if err != nil || strings.Contains(out, "applied") || !strings.Contains(out, "read models at version 1") {
		t.Errorf("second projector migrate: %v, want nothing applied\n%s", err, out)
	}

	store := postgres.New(pool, postgres.Options{})
	created, err := events.NewEvent("UserCreated", map[string]string{"email": "cli@example.com", "name": "CLI"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "user-0190a4b2-7f3c-7a00-8000-000000000001", events.NoStream(), []events.Event{created}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = runProjector(t, env, "rebuild", "-batch-size", "10")
	if err != nil || !strings.Contains(out, "generation 2 is live") || !strings.Contains(out, "1 events of 1 streams") {
		t.Fatalf("projector rebuild: %v\n%s", err, out)
	}
	var email string
	if err := pool.QueryRow(ctx, `select email from annals_proj_users_g2`).Scan(&email); err != nil || email != "cli@example.com" {
		t.Errorf("rebuilt user: %q, %v", email, err)
	}

	for _, args := range [][]string{{}, {"frobnicate"}, {"migrate", "now"}, {"rebuild", "extra"}, {"rebuild", "-batch-size", "-3"}, {"rebuild", "-fast"}} {
		if _, err := runProjector(t, env, args...); !errors.Is(err, errUsage) {
			t.Errorf("projector %v: %v, want a usage error", args, err)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// reprocessCLI runs `annals replay args...` against the event store and read models of a
// schema of its own.
func reprocessCLI(t *testing.T, schema string, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": testenv.SchemaURL(t, schema)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	loadConfig := func() (*config.Config, error) { return config.Load("../../config/event_sourcing.tsk", lookup) }
	var out strings.Builder
	err := replayCmd(context.Background(), args, loadConfig, &out, io.Discard)
	return out.String(), err
}

// dbNow is the database's clock, which sets the events' recording times.
func dbNow(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var now time.Time
	if err := pool.QueryRow(context.Background(), `select clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

func TestReplayCmd_Reprocess(t *testing.T) {
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{})
	add := func(stream, typ string, data any) {
		t.Helper()
		ev, err := events.NewEvent(typ, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, stream, events.Any(), []events.Event{ev}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		u1 = "0190a4b2-7f3c-7a00-8000-000000000001" // created before since, renamed in the range
		u2 = "0190a4b2-7f3c-7a00-8000-000000000002" // created after until only
		o1 = "0190a4b2-7f3c-7a00-8000-0000000000a1" // created before, an item in the range, confirmed after
	)
	item := domain.Item{ID: "sku-1", Name: "Thing", PriceCents: 250, Quantity: 2}
	add("user-"+u1, domain.EventUserCreated, map[string]string{"email": "one@example.com", "name": "One"})
	add("order-"+o1, domain.EventOrderCreated, map[string]any{"order_id": o1, "user_id": u1, "items": []domain.Item{}})
	since := dbNow(t, pool)
	add("user-"+u1, domain.EventUserProfileUpdated, map[string]string{"name": "One Renamed"})
	add("order-"+o1, domain.EventItemAdded, map[string]any{"item": item})
	until := dbNow(t, pool)
	add("order-"+o1, domain.EventOrderConfirmed, map[string]any{"total_cents": 500})
	add("user-"+u2, domain.EventUserCreated, map[string]string{"email": "two@example.com", "name": "Two"})
	if _, err := readmodel.Rebuild(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	proj := readmodel.New(pool, readmodel.Options{})
	gen, err := proj.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users, orders := readmodel.UsersTable(gen), readmodel.OrdersTable(gen)
	damage := func(t *testing.T) {
		t.Helper()
		for _, sql := range []string{
			`update ` + users + ` set name = 'damaged' where id = '` + u1 + `'`,
			`update ` + users + ` set name = 'damaged' where id = '` + u2 + `'`,
			`update ` + orders + ` set total_cents = 1, status = 'cancelled' where id = '` + o1 + `'`,
		} {
			if tag, err := pool.Exec(ctx, sql); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("%s: %v, %d rows", sql, err, tag.RowsAffected())
			}
		}
	}
	check := func(t *testing.T) {
		t.Helper()
		var name1, name2, status string
		var total int64
		if err := pool.QueryRow(ctx, `select (select name from `+users+` where id = $1), (select name from `+users+` where id = $2),
			(select status from `+orders+` where id = $3), (select total_cents from `+orders+` where id = $3)`, u1, u2, o1).
			Scan(&name1, &name2, &status, &total); err != nil {
			t.Fatal(err)
		}
		if name1 != "One Renamed" || status != "confirmed" || total != 500 {
			t.Errorf("streams of the range: user name %q, order %s with %d cents; want One Renamed, confirmed with 500 (their whole history)", name1, status, total)
		}
		if name2 != "damaged" {
			t.Errorf("user created after until: name %q, want damaged (not reprocessed)", name2)
		}
	}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

	t.Run("OK", func(t *testing.T) {
		damage(t)
		out, err := reprocessCLI(t, schema, "--group", "projector", "--since", rfc(since), "--until", rfc(until), "--reprocess")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		check(t)
		for _, want := range []string{"streams rebuilt    2", "events processed   2 of 2", "errors             0", "duration", "reprocess: 2 streams"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("JSON", func(t *testing.T) {
		damage(t)
		out, err := reprocessCLI(t, schema, "--group", "annals-projector", "--since", rfc(since), "--until", rfc(until), "--reprocess", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		check(t)
		var got struct {
			Group           string  `json:"group"`
			Streams         int     `json:"streams"`
			Events          int64   `json:"events"`
			EventsProcessed int64   `json:"events_processed"`
			EventsSkipped   int64   `json:"events_skipped"`
			EventsApplied   int64   `json:"events_applied"`
			Errors          []any   `json:"errors"`
			Duration        float64 `json:"duration_seconds"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		// Applied: both streams' whole histories, 2 events of the user and 3 of the order.
		if got.Group != "annals-projector" || got.Streams != 2 || got.Events != 2 || got.EventsProcessed != 2 ||
			got.EventsSkipped != 0 || got.EventsApplied != 5 || got.Errors == nil || len(got.Errors) != 0 || got.Duration <= 0 {
			t.Errorf("report %+v\n%s", got, out)
		}
	})

	t.Run("DryRun", func(t *testing.T) {
		damage(t)
		out, err := reprocessCLI(t, schema, "--group", "projector", "--since", rfc(since), "--until", rfc(until), "--reprocess", "--dry-run")
		if err != nil || !strings.Contains(out, "would reprocess 2 events of 2 streams") {
			t.Errorf("dry run: %v\n%s", err, out)
		}
		var name string
		if err := pool.QueryRow(ctx, `select name from `+users+` where id = $1`, u1).Scan(&name); err != nil || name != "damaged" {
			t.Errorf("after a dry run the user's name is %q, %v; want damaged", name, err)
		}
	})

	t.Run("Help", func(t *testing.T) {
		code, out, _ := runCLI(t, nil, "help")
		if code != 0 || !strings.Contains(out, "--reprocess") || !strings.Contains(out, "second email") {
			t.Errorf("annals help = %d, want --reprocess described:\n%s", code, out)
		}
		out, err := reprocessCLI(t, schema, "-h")
		if err != nil || !strings.Contains(out, "--reprocess [--json]") {
			t.Errorf("replay -h: %v\n%s", err, out)
		}
		code, _, errOut := runCLI(t, nil, "replay", "--group", "notifier", "--since", "1h", "--reprocess")
		if code != 1 || !strings.Contains(errOut, "second email") {
			t.Errorf("annals replay --group notifier --reprocess = %d, want 1 with the refusal:\n%s", code, errOut)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			args  []string
			usage bool
			want  string
		}{
			{"Notifier", []string{"--group", "notifier"}, false, "second email"},
			{"NotifierGroup", []string{"--group", "annals-notifier"}, false, "second email"},
			{"Auditor", []string{"--group", "auditor"}, false, "duplicate"},
			{"UnknownGroup", []string{"--group", "nobody"}, false, `unknown group "nobody"`},
			{"Topics", []string{"--group", "projector", "--topics", "annals.user"}, true, "--topics"},
			{"UntilBeforeSince", []string{"--group", "projector", "--until", rfc(since.Add(-time.Second))}, false, "--until"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"--since", rfc(since), "--reprocess"}, tc.args...)
				_, err := reprocessCLI(t, schema, args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
					t.Errorf("error %v, want one containing %q (usage error: %v)", err, tc.want, tc.usage)
				}
			})
		}
	})
}

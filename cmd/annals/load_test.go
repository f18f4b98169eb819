package main_test

// The load generator's runs against the writer's real API. They live here rather than in
// internal/load, which must not import a service even in its tests: the annals command,
// whose `annals load` and `annals bench` drive a writer with the generator, sits above both.

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/load"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/writer/api"
)

// writer serves the writer's API over a fresh schema and returns its URL and store.
func writer(t *testing.T) (string, *postgres.Store) {
	t.Helper()
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{})
	r := httpx.NewRouter()
	api.New(store, api.Options{Logger: slog.New(slog.DiscardHandler)}).Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	t.Cleanup(srv.Close)
	return srv.URL, store
}

// Every command of a closed-loop run is valid for the state its client knows: no errors, and
// the store holds exactly the events the successful commands reported.
func TestLoadRun_ClosedLoopValidMix(t *testing.T) {
	url, store := writer(t)
	var mu sync.Mutex
	last := map[string]int64{}
	res, err := load.Run(context.Background(), load.Config{
		BaseURL: url, Concurrency: 4, Duration: 3 * time.Second, Seed: 7,
		OnCommand: func(stream string, version int64, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			last[stream] = max(last[stream], version)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if len(res.Errors) > 0 {
		t.Errorf("errors %v; every generated command should be valid", res.Errors)
	}
	if res.Commands < 50 {
		t.Fatalf("only %d commands in 3 s", res.Commands)
	}
	for _, cmd := range []string{"create_user", "create_order", "add_item", "confirm_order"} {
		if res.ByCommand[cmd] == 0 {
			t.Errorf("no %s in the mix %v", cmd, res.ByCommand)
		}
	}
	var events int64
	for _, v := range last {
		events += v + 1
	}
	st, err := store.Stats(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalEvents != events || st.TotalStreams != int64(len(last)) {
		t.Errorf("store has %d events in %d streams; the commands reported %d in %d", st.TotalEvents, st.TotalStreams, events, len(last))
	}
	if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("percentiles out of order: %+v", res)
	}
}

// Open loop holds the rate it is given, and prints progress.
func TestLoadRun_OpenLoopRate(t *testing.T) {
	url, _ := writer(t)
	var progress bytes.Buffer
	res, err := load.Run(context.Background(), load.Config{BaseURL: url, Rate: 100, Concurrency: 8, Duration: 3 * time.Second, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Commands+res.Missed < 250 || res.Commands > 310 {
		t.Errorf("%d commands (and %d missed) in 3 s at 100/s", res.Commands, res.Missed)
	}
	if !strings.Contains(progress.String(), "commands") {
		t.Errorf("no progress lines: %q", progress.String())
	}
}

// With IdempotencyKeys, every command is recorded under a key of its own.
func TestLoadRun_IdempotencyKeys(t *testing.T) {
	url, store := writer(t)
	res, err := load.Run(context.Background(), load.Config{BaseURL: url, Concurrency: 4, Duration: time.Second, Seed: 3, IdempotencyKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 || res.Commands == 0 {
		t.Fatalf("%d commands, errors %v", res.Commands, res.Errors)
	}
	var keys int
	if err := store.Pool().QueryRow(context.Background(), `select count(*) from annals_idempotency`).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != res.Commands {
		t.Errorf("%d idempotency keys stored for %d commands", keys, res.Commands)
	}
}

package wiring_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

func TestMigrateConsumer(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.SchemaPool(t)
	cfg := config.Default()
	var ran int
	own := func(context.Context, *pgxpool.Pool, *slog.Logger) ([]postgres.MigrationResult, error) {
		ran++
		return nil, nil
	}
	t.Run("EventStoreBehind", func(t *testing.T) {
		cfg.Writer.MigrateOnStart = false
		err := wiring.MigrateConsumer(ctx, pool, cfg, slog.New(slog.DiscardHandler), own)
		if err == nil || !strings.Contains(err.Error(), "MIGRATE_ON_START") || ran != 0 {
			t.Errorf("err = %v, own migrations ran %d times; want the advice and none", err, ran)
		}
	})
	t.Run("MigrateOnStart", func(t *testing.T) {
		cfg.Writer.MigrateOnStart = true
		if err := wiring.MigrateConsumer(ctx, pool, cfg, slog.New(slog.DiscardHandler), own); err != nil || ran != 1 {
			t.Fatalf("err = %v, own migrations ran %d times", err, ran)
		}
		if applied, latest, err := postgres.SchemaVersion(ctx, pool); err != nil || applied != latest {
			t.Errorf("event store at %d of %d (%v)", applied, latest, err)
		}
	})
}

func TestPrep_Run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := wiring.NewPrep(slog.New(slog.DiscardHandler), "test", func(context.Context) error { close(done); return nil })
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the step did not run")
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the step never counted as done")
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v before its context ended", err)
	default:
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

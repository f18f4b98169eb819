package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

func migrateCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: migrate takes no arguments", errUsage)
	}
	_, pool, err := openDatabase(ctx, loadConfig, "annals-migrate")
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	applied, err := wiring.Migrate(ctx, pool, nil)
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %05d %s\n", m.Version, m.Name)
	}
	version, _, err := postgres.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d\n", version)
	return nil
}

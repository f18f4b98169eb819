package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

const projectorUsage = `usage: annals projector <subcommand>

subcommands:
  migrate                  apply the read models' migrations (the projector applies them at start too)
  rebuild [-batch-size N]  build the read models again from the event store and switch to them,
                           while the projector keeps serving and updating the live ones
`

// projectorCmd runs the projector's administration subcommands.
func projectorCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: projector needs a subcommand\n\n%s", errUsage, projectorUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "migrate":
		if len(rest) > 0 {
			return fmt.Errorf("%w: projector migrate takes no arguments", errUsage)
		}
		return projectorMigrate(ctx, loadConfig, stdout)
	case "rebuild":
		fs := flag.NewFlagSet("annals projector rebuild", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		batch := fs.Int("batch-size", 0, "events per round trip (default PROJECTION_BATCH_SIZE)")
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: projector rebuild: %v", errUsage, err)
		}
		if fs.NArg() > 0 || *batch < 0 {
			return fmt.Errorf("%w: projector rebuild takes only -batch-size N (N >= 1)", errUsage)
		}
		return projectorRebuild(ctx, loadConfig, *batch, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, projectorUsage)
		return nil
	}
	return fmt.Errorf("%w: unknown projector subcommand %q\n\n%s", errUsage, sub, projectorUsage)
}

func projectorMigrate(ctx context.Context, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	_, pool, err := openDatabase(ctx, loadConfig, "annals-projector-migrate")
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	applied, err := readmodel.Migrate(ctx, pool, nil)
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %05d %s\n", m.Version, m.Name)
	}
	version, _, err := readmodel.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "read models at version %d\n", version)
	return nil
}

// projectorRebuild migrates the read models (a no-op when they are up to date) and rebuilds
// them. The event store must be migrated (annals migrate).
func projectorRebuild(ctx context.Context, loadConfig func() (*config.Config, error), batch int, stdout io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if batch == 0 {
		batch = cfg.Projections.BatchSize
	}
	pool, err := app.NewPool(ctx, cfg.EventStore, "annals-projector-rebuild")
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		return err
	}
	keys, err := wiring.PersonalDataKeyring(cfg, pool)
	if err != nil {
		return err
	}
	st, err := readmodel.New(pool, readmodel.Options{BatchSize: batch, Keys: keys}).Rebuild(ctx, stdout)
	if err != nil {
		return err
	}
	if len(st.Stopped) > 0 {
		fmt.Fprintf(stdout, "warning: %d streams stopped before their end, as in the live projector (see above)\n", len(st.Stopped))
	}
	return nil
}

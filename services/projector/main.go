// Command annals-projector consumes the event topics in the annals-projector group and builds the user and order read models in PostgreSQL, served by its query API.
//
// Usage:
//
//	annals-projector [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/projector/api"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

func main() { app.RunProgram(app.Projector, wire) }

// migrate checks the event store's schema (or applies it, with MIGRATE_ON_START), applies
// the migrations of the read models' own tables, which the projector owns, and of the personal
// data key store when personal data is encrypted, and gives the group's inbox the rows
// recorded before its name carried the topic prefix.
func migrate(ctx context.Context, m *app.Main) error {
	if err := wiring.MigrateConsumer(ctx, m.DB, m.Config, m.Logger, readmodel.Migrate); err != nil {
		return err
	}
	if err := wiring.MigrateKeyStore(ctx, m.DB, m.Config, m.Logger); err != nil {
		return err
	}
	inbox := consume.Inbox{Group: m.Config.ConsumerGroup("projector")}
	n, err := inbox.Inherit(ctx, m.DB, readmodel.Group, m.Config.Projections.InboxRetention)
	if n > 0 {
		m.Logger.Info("the inbox took over the rows recorded under the group's former name", "from", readmodel.Group, "group", inbox.Group, "rows", n)
	}
	return err
}

func wire(_ context.Context, m *app.Main) error {
	keys, err := wiring.PersonalDataKeyring(m.Config, m.DB)
	if err != nil {
		return err
	}
	p := readmodel.New(m.DB, readmodel.Options{BatchSize: m.Config.Projections.BatchSize, Metrics: readmodel.NewMetrics(m.Registry), Keys: keys})
	api.New(p, api.Options{Logger: m.Logger}).Register(m.Router)
	m.Protect(api.Policy())
	prep := wiring.NewPrep(m.Logger, "prepare the database", func(ctx context.Context) error { return migrate(ctx, m) })
	m.AddCheck("database_prepared", prep.Check)
	if !m.Config.Projections.Enabled {
		m.Logger.Info("projections are disabled (PROJECTIONS_ENABLED=false): serving the read models without updating them")
		m.Go("migrations", prep.Run)
		return nil
	}
	cc, err := wiring.ConsumerConfig(m.Config, m.DB, m.Config.ConsumerGroup("projector"), m.Logger, consume.NewMetrics(m.Registry))
	if err != nil {
		return err
	}
	c, err := p.Consumer(cc)
	if err != nil {
		return err
	}
	m.Go("consumer", func(ctx context.Context) error {
		if !prep.Wait(ctx) {
			return nil
		}
		return c.Run(ctx)
	})
	return nil
}

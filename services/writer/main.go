// Command annals-writer turns HTTP commands about users and orders into events, appends them to the event store that EVENT_STORE_TYPE names (PostgreSQL, Redis or MongoDB) under optimistic concurrency together with their outbox entries, and runs the relay that publishes the outbox to Kafka.
//
// Usage:
//
//	annals-writer [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz (PostgreSQL and the chosen store; ready without Kafka: the outbox
// keeps the appends), /healthz/kafka,
// /healthz/relay, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/feed"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/lag"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/services/writer/api"
)

func main() { app.RunProgram(app.Writer, migrateOnStart, wire) }

// migrateOnStart applies the event store's migrations, and the key store's of users' data
// keys, when MIGRATE_ON_START is set; several writers starting at once are safe (the
// migrations serialise them).
func migrateOnStart(ctx context.Context, m *app.Main) error {
	if !m.Config.Writer.MigrateOnStart {
		return nil
	}
	_, err := wiring.Migrate(ctx, m.DB, m.Logger)
	return err
}

// wire builds the event store EVENT_STORE_TYPE names (wiring.OpenEventStore; PostgreSQL keeps
// the schema catalog and the inboxes with every type), the relay that publishes its outbox,
// the lag exporter (unless LAG_EXPORTER_ENABLED=false), the live feed of GET /v1/subscribe and
// the command API, with each principal's commands limited to COMMAND_RATE_LIMIT a second,
// encrypts users' personal data with the key of PERSONAL_DATA_KEY_FILE (in clear, with a
// warning, without one), registers the API's routes, and prunes superseded snapshots and the
// consumer groups' inbox rows older than INBOX_RETENTION every hour until ctx ends.
func wire(ctx context.Context, m *app.Main) error {
	// Appends wake the relay and the live feed of GET /v1/subscribe at once.
	var r *relay.Relay
	var live *feed.Feed
	so := wiring.StoreOptions{OnAppend: func() { r.Wake(); live.Wake() }}
	if m.Config.EventSourcing.StoreType == config.StorePostgreSQL {
		so.Metrics = postgres.NewMetrics(m.Registry)
	}
	es, err := wiring.OpenEventStore(ctx, m.Config, m.DB, so)
	if err != nil {
		return err
	}
	m.OnClose(es.Close)
	if es.Type != config.StorePostgreSQL {
		// PostgreSQL stays a dependency, checked by app: the schema catalog and the inboxes.
		m.AddCheck(es.Type, es.Ping)
	}
	if r, err = wiring.NewRelayOn(es.Outbox, m.Config, m.Logger, m.Registry); err != nil {
		return err
	}
	// The consumer groups' lag, read from the broker, so that it shows even when every
	// consumer is down. A deployment that runs `annals lag-exporter` instead turns it off.
	if mc := m.Config.Monitoring; mc.LagExporterEnabled {
		mon, err := lag.New(lag.Config{
			Brokers: m.Config.Kafka.Brokers, Security: m.Config.Kafka.Security(), Topics: wiring.EventTopics(m.Config),
			Interval: mc.LagPollInterval, Window: mc.LagStatusWindow, Logger: m.Logger,
		})
		if err != nil {
			return err
		}
		m.Registry.MustRegister(mon)
		m.Go("lag monitor", mon.Run)
	}
	inbox, err := consume.NewInboxPruner(m.DB, consume.InboxPruneConfig{
		Retention: m.Config.Projections.InboxRetention, Logger: m.Logger, Registerer: m.Registry,
	})
	if err != nil {
		return err
	}
	m.Go("inbox pruner", inbox.Run)
	// Kafka is no part of the writer's readiness: its outbox keeps the appends while the
	// brokers are away. The relay's health is reported beside readiness instead.
	m.AddReport("relay", wiring.RelayReport(r))
	m.Go("relay", func(ctx context.Context) error {
		defer r.Close()
		return wiring.RunRelay(ctx, r, m.DB, m.Config, m.Logger)
	})
	if live, err = api.FeedFrom(es.Store, m.Config.Writer, m.Logger, m.Registry); err != nil {
		return err
	}
	apiOpts := api.OptionsFrom(m.Config, m.Logger)
	apiOpts.Feed = live
	apiOpts.Catalog = m.DB
	apiOpts.Hops = hops.NewHistogram(m.Registry, hops.CommandToCommit)
	if apiOpts.Commands, err = api.CommandLimit(m.Config.Writer, m.Registry); err != nil {
		return err
	}
	if apiOpts.Keys, err = wiring.Keyring(m.DB, m.Config); err != nil {
		return err
	}
	if apiOpts.Keys == nil {
		m.Logger.Warn("personal data is recorded in clear (PERSONAL_DATA_KEY_FILE is not set): users' emails and names cannot be erased; DELETE /v1/users/{id}/personal-data answers 409")
	}
	if apiOpts.Disabled {
		m.Logger.Warn("event sourcing is disabled (EVENT_SOURCING_ENABLED=false): every command is refused with 503 event_sourcing_disabled; reads, the relay and the consumer groups keep working")
	}
	a := api.New(es.Store, apiOpts)
	m.Go("all-stream", a.WatchAllStream)
	a.Register(m.Router)
	m.Protect(api.Policy())
	go a.PruneSnapshots(ctx, time.Hour, m.Config.Aggregates.SnapshotRetention)
	return nil
}

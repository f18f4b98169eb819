// Command annals-notifier consumes the event topics in the annals-notifier group and sends email over SMTP, keeping a sent log keyed by event id so that a redelivered event is not mailed twice.
//
// Usage:
//
//	annals-notifier [-config file] [-addr host:port]
//
// Besides the group, every notifier process reads the user topic for its own directory of
// addresses (see package notify). Configuration comes from config/event_sourcing.tsk and the
// environment (see the README).
// It serves /livez, /readyz, /metrics, /openapi.json and GET /v1/notifications (the sent log),
// and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/notifier/api"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

func main() { app.RunProgram(app.Notifier, wire) }

// migrate checks the event store's schema (or applies it, with MIGRATE_ON_START) and applies
// the migrations of the notifier's own tables and, when personal data is encrypted, of the key
// store.
func migrate(ctx context.Context, m *app.Main) error {
	if err := wiring.MigrateConsumer(ctx, m.DB, m.Config, m.Logger, notify.Migrate); err != nil {
		return err
	}
	return wiring.MigrateKeyStore(ctx, m.DB, m.Config, m.Logger)
}

func wire(ctx context.Context, m *app.Main) error {
	cfg := m.Config
	// The notifier asks the event store whether an order's user exists: PostgreSQL's, on the
	// notifier's own pool, unless EVENT_STORE_TYPE names another.
	var users notify.StreamInfoer
	if cfg.EventSourcing.StoreType != config.StorePostgreSQL {
		es, err := wiring.OpenEventStore(ctx, cfg, m.DB, wiring.StoreOptions{})
		if err != nil {
			return err
		}
		m.OnClose(es.Close)
		users = storeDependency{es.Store}
	}
	tpl, err := templates.Load(cfg.Notifier.TemplatesDir)
	if err != nil {
		return fmt.Errorf("NOTIFIER_TEMPLATES_DIR (notifier.templates_dir): %w", err)
	}
	snd, err := sender.New(sender.Config{
		Addr:      cfg.SMTP.Addr,
		From:      cfg.SMTP.From,
		Username:  cfg.SMTP.Username,
		Password:  cfg.SMTP.Password.Reveal(),
		TLS:       sender.TLSMode(cfg.SMTP.StartTLS),
		Timeout:   cfg.SMTP.Timeout,
		Rate:      float64(cfg.Notifier.RateLimit),
		UserAgent: "annals-notifier",
	})
	if err != nil {
		return err
	}
	keys, err := wiring.PersonalDataKeyring(cfg, m.DB)
	if err != nil {
		return err
	}
	n := notify.New(m.DB, snd, tpl, notify.Options{
		Keys:                   keys,
		MessageIDDomain:        snd.Domain(),
		UserWait:               cfg.Notifier.UserWait,
		EmailsPerPrincipalHour: cfg.Notifier.EmailsPerPrincipalHour,
		EventStore:             users,
		Logger:                 m.Logger,
		Registerer:             m.Registry,
	})
	api.New(n.SentLog(), api.Options{Logger: m.Logger}).Register(m.Router)
	m.Protect(api.Policy())
	prep := wiring.NewPrep(m.Logger, "prepare the database", func(ctx context.Context) error { return migrate(ctx, m) })
	m.AddCheck("database_prepared", prep.Check)
	if !cfg.Handlers.Enabled {
		m.Logger.Info("event handlers are disabled (EVENT_HANDLERS_ENABLED=false): serving the sent log without sending email")
		m.Go("migrations", prep.Run)
		return nil
	}
	base, err := wiring.ConsumerConfig(cfg, m.DB, cfg.ConsumerGroup("notifier"), m.Logger, consume.NewMetrics(m.Registry))
	if err != nil {
		return err
	}
	c, err := n.Consumer(base)
	if err != nil {
		return err
	}
	dir, err := n.Directory(notify.DirectoryConfig{
		Brokers:  cfg.Kafka.Brokers,
		Security: cfg.Kafka.Security(),
		Topic:    cfg.TopicName(domain.UserCategory),
		Decode:   base.Decode,
		Logger:   m.Logger,
	})
	if err != nil {
		return err
	}
	m.Go("directory", func(ctx context.Context) error {
		if !prep.Wait(ctx) {
			return nil
		}
		return dir.Run(ctx)
	})
	m.Go("consumer", func(ctx context.Context) error {
		defer snd.Close()
		if !prep.Wait(ctx) {
			return nil
		}
		return c.Run(ctx)
	})
	return nil
}

// storeDependency asks a store other than PostgreSQL about streams. Its failures, other than
// a stream it does not have, are the store's and never the event's: they pause the group
// (consume.Unavailable) until the store answers, and dead-letter nothing.
type storeDependency struct{ store notify.StreamInfoer }

func (d storeDependency) StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error) {
	info, err := d.store.StreamInfo(ctx, streamID)
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		err = consume.Unavailable(fmt.Errorf("event store: %w", err))
	}
	return info, err
}

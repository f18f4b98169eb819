// Command annals-auditor consumes the event topics in the annals-auditor group and keeps a hash-chained, tamper-evident audit log with a query and verify API.
//
// Usage:
//
//	annals-auditor [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
//
// After its migrations (run as the configured database user) it works as the role
// annals_auditor, which may only insert into and select from the audit log. With
// AUDITOR_CHECKPOINT_KEY_FILE it signs a checkpoint of the chain's head every
// AUDITOR_CHECKPOINT_INTERVAL and appends it to AUDITOR_CHECKPOINT_FILE and to its log; a
// chain that no longer holds the newest checkpoint makes /readyz fail (audit_checkpoint) while
// it keeps recording events.
package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/api"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

func main() { app.RunProgram(app.Auditor, wire) }

// role is the database role the auditor switches to after its migrations.
const role = auditlog.DefaultRole

// migrate checks the event store's schema (or applies it, with MIGRATE_ON_START: the
// auditor's blocked streams live there) and applies the audit log's own migrations and
// grants.
func migrate(ctx context.Context, m *app.Main) error {
	return wiring.MigrateConsumer(ctx, m.DB, m.Config, m.Logger,
		func(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]postgres.MigrationResult, error) {
			return auditlog.Migrate(ctx, pool, log, role)
		})
}

// checkpointKey loads the checkpoints' signing key, and the anchor every verification checks
// when they go to a file; without a key it warns once and returns nils.
func checkpointKey(m *app.Main) (*auditlog.Signer, *auditlog.Anchor, error) {
	c := m.Config.Auditor
	if c.CheckpointKeyFile == "" {
		m.Logger.Warn("audit: no checkpoint key (AUDITOR_CHECKPOINT_KEY_FILE): the hash chain has no anchor outside PostgreSQL, " +
			"so whoever owns the database can truncate or rewrite it unnoticed; fine for local runs only")
		return nil, nil, nil
	}
	s, err := auditlog.LoadSigner(c.CheckpointKeyFile)
	if err != nil {
		return nil, nil, err
	}
	if c.CheckpointFile == "" {
		m.Logger.Warn("audit: checkpoints go to the log only (no AUDITOR_CHECKPOINT_FILE): the auditor cannot check its chain against them after a restart")
		return s, nil, nil
	}
	return s, &auditlog.Anchor{File: c.CheckpointFile, Key: s.Public()}, nil
}

// wire runs the API and the consumer on a pool of their own that works as the auditor's role.
func wire(ctx context.Context, m *app.Main) error {
	pool, err := auditlog.RolePool(ctx, m.DB, role) // connects lazily
	if err != nil {
		return err
	}
	// In the background, until the database is there: the migrations (which grant the role its
	// privileges), then a connection as the role, which fails if the role cannot be taken.
	prep := wiring.NewPrep(m.Logger, "prepare the database", func(ctx context.Context) error {
		if err := migrate(ctx, m); err != nil {
			return err
		}
		return pool.Ping(ctx)
	})
	m.AddCheck("database_prepared", prep.Check)
	m.AddCheck("postgres_as_"+role, func(ctx context.Context) error { return pool.Ping(ctx) })
	metrics := auditlog.NewMetrics(m.Registry)
	signer, anchor, err := checkpointKey(m)
	if err != nil {
		pool.Close()
		return err
	}
	l := auditlog.New(pool, auditlog.Options{Metrics: metrics, Anchor: anchor})
	if signer != nil {
		metrics.CheckpointsEnabled(true)
		cp := l.NewCheckpointer(signer, m.Config.Auditor.CheckpointFile, m.Logger)
		m.AddCheck("audit_checkpoint", cp.Healthy)
		m.Go("audit checkpoints", func(ctx context.Context) error {
			if prep.Wait(ctx) {
				cp.Run(ctx, m.Config.Auditor.CheckpointInterval)
			}
			return nil
		})
	}
	api.New(l, api.Options{Logger: m.Logger}).Register(m.Router)
	m.Protect(api.Policy())
	var c *consume.Consumer
	if m.Config.Handlers.Enabled {
		var cc consume.Config
		cc, err = wiring.ConsumerConfig(m.Config, m.DB, m.Config.ConsumerGroup("auditor"), m.Logger, consume.NewMetrics(m.Registry))
		if err == nil {
			c, err = l.Consumer(cc)
		}
		if err != nil {
			pool.Close()
			return err
		}
	} else {
		m.Logger.Info("event handlers are disabled (EVENT_HANDLERS_ENABLED=false): serving the audit log without appending to it")
	}
	if every := m.Config.Auditor.VerifyInterval; every > 0 {
		// The whole chain, now and then every interval, so that the outcome on /metrics (and
		// the alert on it) is never older than that.
		m.Go("audit verification", func(ctx context.Context) error {
			if prep.Wait(ctx) {
				l.NewWatch(auditlog.VerifyOptions{}).Run(ctx, every, m.Logger)
			}
			return nil
		})
	}
	m.Go("auditor", func(ctx context.Context) error {
		defer pool.Close()
		if !prep.Wait(ctx) {
			return nil
		}
		if c == nil {
			<-ctx.Done()
			return nil
		}
		return c.Run(ctx)
	})
	return nil
}

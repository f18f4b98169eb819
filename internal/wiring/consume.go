package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/schema"
)

// EventTopics are the topics the consumer groups read: one per category.
func EventTopics(cfg *config.Config) []string {
	topics := make([]string, 0, len(Categories))
	for _, c := range Categories {
		topics = append(topics, cfg.TopicName(c))
	}
	return topics
}

// ConsumerConfig is the consume.Config of a group from the configuration:
// PROJECTION_BATCH_SIZE events per batch, parallel lanes unless PARALLEL_PROJECTIONS=false,
// PROJECTION_RETRY_ATTEMPTS retries unless RETRY_FAILED_EVENTS=false, dead letters to the
// group's DLQ topic; ASYNC_EVENT_PROCESSING=false: one lane and commits made before the
// next batch (consume.Config.Sequential); EVENT_HANDLER_ERROR_HANDLING=false: no retry and no
// dead letter, the group stops at a failing event (consume.Config.StopOnFailure);
// REAL_TIME_PROJECTIONS=false: the projector's group (ConsumerGroup("projector")) applies in
// rounds every PROJECTION_INTERVAL (consume.Config.Interval), the others as events arrive;
// the notifier's and the auditor's groups let a batch fill for NOTIFIER_BATCH_LINGER and
// AUDITOR_BATCH_LINGER (consume.Config.Linger), the projector's takes what has arrived;
// offsets committed at most every CONSUMER_COMMIT_INTERVAL, after every batch when it is 0s
// or with ASYNC_EVENT_PROCESSING=false (consume.Config.CommitInterval); and the group membership timings KAFKA_SESSION_TIMEOUT and
// CONSUMER_DRAIN_TIMEOUT with a heartbeat every config.ConsumerHeartbeat (config.Validate
// has checked that they fit together), and the brokers' security (KAFKA_SECURITY_PROTOCOL, ...). Its decoder (Decoder) verifies the relay's signature
// and reads newer writers' schemas from the catalog table in db; without a signing key it
// fails unless EVENT_SIGNING_REQUIRED=false. With LOG_LEVEL=debug every message handled gets
// a log line (consume.Logging). Unit and Blocks are the caller's, and so is the rest of the
// middleware.
func ConsumerConfig(cfg *config.Config, db *pgxpool.Pool, group string, log *slog.Logger, metrics *consume.Metrics) (consume.Config, error) {
	decode, err := Decoder(cfg, db, log)
	if err != nil {
		return consume.Config{}, err
	}
	c := consume.Config{
		Brokers:  cfg.Kafka.Brokers,
		Group:    group,
		Topics:   EventTopics(cfg),
		DLQTopic: cfg.DLQTopic(group),
		Decode:   decode,

		BatchSize: cfg.Projections.BatchSize,
		Lanes:     8,
		Attempts:  1 + cfg.Projections.RetryAttempts,
		Security:  cfg.Kafka.Security(),
		Logger:    log,
		Metrics:   metrics,
	}
	if !cfg.Projections.Parallel {
		c.Lanes = 1
	}
	if !cfg.Handlers.RetryFailedEvents {
		c.Attempts = 1
	}
	if cfg.Log.Level == "debug" {
		// A line for each message handled (and each failed attempt), with the trace and span
		// ids of its process span while tracing.
		c.Middleware = append(c.Middleware, consume.Logging(log))
	}
	if !cfg.Handlers.AsyncProcessing {
		c.Lanes, c.Sequential = 1, true
	}
	if !cfg.Handlers.ErrorHandling {
		c.Attempts, c.StopOnFailure = 1, true
	}
	if !cfg.Projections.RealTime && group == cfg.ConsumerGroup("projector") {
		c.Interval = cfg.Projections.Interval
	}
	switch group {
	case cfg.ConsumerGroup("notifier"):
		c.Linger = cfg.Notifier.BatchLinger
	case cfg.ConsumerGroup("auditor"):
		c.Linger = cfg.Auditor.BatchLinger
	}
	c.CommitInterval = cfg.Kafka.CommitInterval
	if c.CommitInterval == 0 || c.Sequential {
		c.CommitInterval = -1 // consume's zero is its default; one at a time commits each batch
	}
	c.SessionTimeout = cfg.Kafka.SessionTimeout
	c.HeartbeatInterval = config.ConsumerHeartbeat
	c.DrainTimeout = cfg.Kafka.DrainTimeout
	c.RebalanceTimeout = max(c.DrainTimeout+5*time.Second, 15*time.Second)
	return c, nil
}

// Decoder is the decoder of the deployment's event records: the domain's catalog, the
// signature checked with the keys of the configuration (Verifier), and the schemas of
// writers deployed before this consumer read from the catalog table in db.
func Decoder(cfg *config.Config, db *pgxpool.Pool, log *slog.Logger) (consume.Decoder, error) {
	v, acceptUnsigned, err := Verifier(cfg)
	if err != nil {
		return nil, err
	}
	dc := consume.DecoderConfig{Catalog: domain.Catalog(), AcceptUnsigned: acceptUnsigned, Lookup: schema.TableLookup(db)}
	switch {
	case v != nil:
		dc.Verifier = v
	default:
		log.Warn("consume: EVENT_SIGNING_REQUIRED=false and no signing key: every record on the topics is taken for the relay's")
	}
	if v != nil && acceptUnsigned {
		log.Warn("consume: EVENT_SIGNING_REQUIRED=false: records without a signature are accepted unverified")
	}
	return consume.NewDecoder(dc), nil
}

// EnsureEventStoreSchema makes sure the event store's tables are current before a consuming
// service starts (its inbox and stream-block tables live there): it applies the migrations
// when migrate is set (MIGRATE_ON_START; safe when several processes start at once), and
// otherwise fails with an error that says how, rather than dead-lettering events later.
func EnsureEventStoreSchema(ctx context.Context, pool *pgxpool.Pool, migrate bool, log *slog.Logger) error {
	if migrate {
		_, err := postgres.Migrate(ctx, pool, log)
		return err
	}
	applied, latest, err := postgres.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if applied < latest {
		return fmt.Errorf("the event store's schema is at migration %d of %d: run `annals migrate` or set MIGRATE_ON_START=true", applied, latest)
	}
	return nil
}

// MigrateConsumer is the database step of a service that consumes events: the event store's
// schema as EnsureEventStoreSchema leaves it, then the service's own tables, which migrate
// (readmodel.Migrate, say) brings up to date.
func MigrateConsumer(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger,
	migrate func(context.Context, *pgxpool.Pool, *slog.Logger) ([]postgres.MigrationResult, error)) error {
	if err := EnsureEventStoreSchema(ctx, pool, cfg.Writer.MigrateOnStart, log); err != nil {
		return err
	}
	_, err := migrate(ctx, pool, log)
	return err
}

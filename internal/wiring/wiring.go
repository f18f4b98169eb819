// Package wiring builds, from the configuration, the parts that more than one program runs:
// the event store that EVENT_STORE_TYPE names with its outbox (PostgreSQL, Redis or MongoDB;
// OpenEventStore), the relay with its encoder (in the writer, and alone as `annals relay`)
// and the list of topics. It holds no logic of its own beyond choosing and connecting parts,
// and must never let a program use one store for its appends and another for its outbox.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
)

// Categories are the aggregate types whose events get a topic each.
var Categories = []string{"user", "order"}

// ConsumingServices are the services that read the event topics, each in a consumer group of
// its own (config.ConsumerGroup) whose dead letters get a topic.
var ConsumingServices = []string{"projector", "notifier", "auditor"}

// Topics are the event topics and dead-letter topics of a deployment.
func Topics(cfg *config.Config) []relay.Topic {
	var topics []relay.Topic
	for _, c := range Categories {
		topics = append(topics, relay.Topic{Name: cfg.TopicName(c), Partitions: cfg.Kafka.TopicPartitions, ReplicationFactor: cfg.Kafka.ReplicationFactor})
	}
	for _, s := range ConsumingServices {
		topics = append(topics, relay.Topic{Name: cfg.DLQTopic(cfg.ConsumerGroup(s)), Partitions: cfg.Kafka.TopicPartitions, ReplicationFactor: cfg.Kafka.ReplicationFactor})
	}
	return topics
}

// NewRelay builds the relay of a deployment on the PostgreSQL store's outbox in pool (see
// NewRelayOn).
func NewRelay(pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*relay.Relay, error) {
	return NewRelayOn(postgres.NewOutbox(pool), cfg, log, reg)
}

// NewRelayOn builds the relay of a deployment on the outbox of its event store
// (EventStore.Outbox); its metrics go to reg, with annals_relay_healthy, 1 while its Health
// is OK. It signs every record with EVENT_SIGNING_KEY, and refuses to build without one
// unless EVENT_SIGNING_REQUIRED=false.
func NewRelayOn(ob relay.Outbox, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*relay.Relay, error) {
	enc := relay.SchemaEncoder{Catalog: domain.Catalog(), Format: cfg.EventSourcing.Serialization}
	rc := relay.Config{
		Brokers:      cfg.Kafka.Brokers,
		TopicPrefix:  cfg.Kafka.TopicPrefix,
		MaxReadBytes: int64(cfg.Relay.MaxReadBytes),
		Security:     cfg.Kafka.Security(),
		Logger:       log,
		Metrics:      relay.NewMetrics(reg),
	}
	signer, err := Signer(cfg)
	if err != nil {
		return nil, err
	}
	if signer != nil {
		rc.Signer = signer
	} else {
		log.Warn("relay: EVENT_SIGNING_REQUIRED=false and no EVENT_SIGNING_KEY: records go out unsigned, and consumers that verify will set them aside")
	}
	r, err := relay.New(ob, enc, rc)
	if err != nil || reg == nil {
		return r, err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "annals_relay_healthy",
		Help: "1 while the relay publishes (or stands by while another relay does), 0 while it cannot start or its publishing fails.",
	}, func() float64 {
		if r.Health().OK() {
			return 1
		}
		return 0
	}))
	return r, nil
}

// RelayReport is the relay's health as a service reports it (app.Main.AddReport): its
// relay.Health, with publishing true while it publishes, and whether that is OK.
func RelayReport(r *relay.Relay) func(context.Context) (any, bool) {
	return func(context.Context) (any, bool) {
		h := r.Health()
		return struct {
			relay.Health
			Publishing bool `json:"publishing"`
		}{h, h.State == relay.Publishing}, h.OK()
	}
}

// RunRelay registers the event schemas in the database's catalog and ensures the topics
// (retrying while PostgreSQL or Kafka is unreachable, so that a service starts before its
// dependencies), then runs the relay until ctx ends. A broker that refuses the relay (its
// security, or an ACL it lacks) ends it with an error that names the setting or the ACL at
// fault (config.ExplainKafka): no retry cures that.
func RunRelay(ctx context.Context, r *relay.Relay, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger) error {
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"register the event schemas", func() error { return domain.Catalog().Register(ctx, pool) }},
		{"ensure the topics", func() error {
			return relay.EnsureTopicsWith(ctx, cfg.Kafka.Brokers, cfg.Kafka.Security(), Topics(cfg), io.Discard)
		}},
	} {
		for {
			err := step.do()
			if err == nil {
				break
			}
			var refused *kafkasec.Error
			if errors.Is(err, schema.ErrConflict) || errors.As(err, &refused) {
				// A conflict, or a broker refusing the relay, does not clear by waiting.
				return fmt.Errorf("%s: %w", step.what, config.ExplainKafka(err))
			}
			r.Preparing(fmt.Errorf("cannot %s yet: %w", step.what, err))
			log.Warn("relay: cannot "+step.what+" yet; retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
	}
	r.Preparing(nil)
	return config.ExplainKafka(r.Run(ctx))
}

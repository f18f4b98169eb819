package service

import (
	"hash/fnv"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
)

// newRelay builds the relay that publishes the outbox of the bank's event store to the topics
// "<prefix>.<category>". It is the only place that calls pkg/relay's constructor.
//
// Relays of one outbox elect the one that publishes through an advisory lock, and advisory
// locks are shared by the whole database: the lock is named after the schema as well as the
// prefix, so that the relay of another schema's outbox never waits on this one.
func newRelay(db *pgxpool.Pool, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*relay.Relay, error) {
	h := fnv.New64a()
	h.Write([]byte("bank relay " + cfg.Schema + " " + cfg.TopicPrefix))
	return relay.New(postgres.NewOutbox(db), relay.SchemaEncoder{Catalog: bank.Catalog()}, relay.Config{
		Brokers:     cfg.Brokers,
		TopicPrefix: cfg.TopicPrefix,
		LockKey:     int64(h.Sum64()),
		Security:    cfg.Kafka,
		Logger:      log,
		Metrics:     relay.NewMetrics(reg),
	})
}

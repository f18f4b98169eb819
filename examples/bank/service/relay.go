package service

import (
	"hash/fnv"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
)

// encoder is the relay's relay.Encoder: each event as its type's current Avro schema of the
// bank's catalog, in the single-object encoding, with the schema's fingerprint.
type encoder struct{ catalog *schema.Catalog }

// Encode implements relay.Encoder.
func (e encoder) Encode(ev events.Envelope) ([]byte, string, uint64, error) {
	value, fp, err := e.catalog.Encode(ev)
	return value, schema.ContentTypeAvro, fp, err
}

// newRelay builds the relay that publishes the outbox of the bank's event store to the topics
// "<prefix>.<category>". It is the only place that calls pkg/relay's constructor.
//
// Relays of one outbox elect the one that publishes through an advisory lock, and advisory
// locks are shared by the whole database: the lock is named after the schema as well as the
// prefix, so that the relay of another schema's outbox never waits on this one.
func newRelay(db *pgxpool.Pool, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*relay.Relay, error) {
	h := fnv.New64a()
	h.Write([]byte("bank relay " + cfg.Schema + " " + cfg.TopicPrefix))
	return relay.New(db, encoder{bank.Catalog()}, relay.Config{
		Brokers:     cfg.Brokers,
		TopicPrefix: cfg.TopicPrefix,
		LockKey:     int64(h.Sum64()),
		Logger:      log,
		Metrics:     relay.NewMetrics(reg),
	})
}

package wiring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/mongodb"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/events/redis"
	"github.com/annals-dev/annals/pkg/relay"
)

// Store is an event store that records idempotency keys with its appends and deletes a
// stream's snapshots, as every store EVENT_STORE_TYPE names does.
type Store interface {
	events.Store
	events.IdempotencyStore
	// DeleteSnapshots deletes every snapshot of a stream (after an erasure of personal data).
	DeleteSnapshots(ctx context.Context, streamID string) (int64, error)
}

// Holds is the operator's side of the held streams of a store's outbox (`annals outbox`).
type Holds interface {
	outbox.Operator
	// RetryAll releases every hold and returns the holds it released.
	RetryAll(ctx context.Context) ([]outbox.Hold, error)
}

// EventStore is the event store that EVENT_STORE_TYPE chose, with the relay's outbox and the
// operator's side of its holds, all on the same data.
type EventStore struct {
	// Type is EVENT_STORE_TYPE: postgresql, redis or mongodb.
	Type   string
	Store  Store
	Outbox relay.Outbox
	Holds  Holds
	// Ping reports whether the store answers; for /readyz.
	Ping  func(ctx context.Context) error
	close func()
}

// Close closes the connections that OpenEventStore made; the PostgreSQL pool it was given
// stays open.
func (s *EventStore) Close() {
	if s.close != nil {
		s.close()
	}
}

// StoreOptions are what a program sets on its event store beyond the configuration.
type StoreOptions struct {
	// OnAppend is called after every append that committed (see postgres.Options.OnAppend).
	OnAppend func()
	// Metrics count the PostgreSQL store's appends; the other stores have none yet.
	Metrics *postgres.Metrics
}

// PostgresOptions are the PostgreSQL store's options of the [aggregates] section:
// OPTIMISTIC_CONCURRENCY, MAX_EVENTS_PER_AGGREGATE and MAX_EVENT_BYTES.
func PostgresOptions(c config.Aggregates) postgres.Options {
	return postgres.Options{
		DisableOptimisticConcurrency: !c.OptimisticConcurrency,
		MaxEventsPerStream:           c.MaxEventsPerAggregate,
		MaxEventBytes:                c.MaxEventBytes,
	}
}

// connectTimeout bounds connecting to Redis or MongoDB, and MongoDB's creation of its indexes,
// at start.
const connectTimeout = 30 * time.Second

// OpenEventStore opens the event store that cfg.EventSourcing.StoreType names, with the
// limits of the [aggregates] section (OPTIMISTIC_CONCURRENCY applies to PostgreSQL only):
// PostgreSQL on pool; Redis at EVENT_STORE_REDIS_URL under EVENT_STORE_REDIS_PREFIX; MongoDB
// at EVENT_STORE_MONGODB_URI in EVENT_STORE_MONGODB_DATABASE, whose indexes it creates.
func OpenEventStore(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, opts StoreOptions) (*EventStore, error) {
	agg := cfg.Aggregates
	switch t := cfg.EventSourcing.StoreType; t {
	case config.StorePostgreSQL, "":
		po := PostgresOptions(agg)
		po.OnAppend, po.Metrics = opts.OnAppend, opts.Metrics
		s := postgres.New(pool, po)
		o := s.Outbox()
		return &EventStore{Type: config.StorePostgreSQL, Store: s, Outbox: o, Holds: o, Ping: pool.Ping}, nil
	case config.StoreRedis:
		ro, err := goredis.ParseURL(cfg.EventStore.RedisURL.Reveal())
		if err != nil {
			// The URL may hold a password: the error must not quote it.
			return nil, errors.New("EVENT_STORE_REDIS_URL (event_store.redis_url): not a Redis URL")
		}
		rdb := goredis.NewClient(ro)
		s := redis.New(rdb, redis.Options{
			Prefix:             cfg.EventStore.RedisPrefix,
			MaxEventsPerStream: agg.MaxEventsPerAggregate,
			MaxEventBytes:      agg.MaxEventBytes,
			OnAppend:           opts.OnAppend,
		})
		o := s.Outbox()
		ping := func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
		return &EventStore{Type: t, Store: s, Outbox: o, Holds: o, Ping: ping, close: func() { rdb.Close() }}, nil
	case config.StoreMongoDB:
		client, err := mongo.Connect(options.Client().ApplyURI(cfg.EventStore.MongoDBURI.Reveal()))
		if err != nil {
			return nil, errors.New("EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): not a MongoDB URI")
		}
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		s, err := mongodb.New(cctx, client.Database(cfg.EventStore.MongoDBDatabase), mongodb.Options{
			MaxEventsPerStream: agg.MaxEventsPerAggregate,
			MaxEventBytes:      agg.MaxEventBytes,
			OnAppend:           opts.OnAppend,
		})
		if err != nil {
			client.Disconnect(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("event store on MongoDB: %w", err)
		}
		o := s.Outbox()
		ping := func(ctx context.Context) error { return client.Ping(ctx, nil) }
		return &EventStore{Type: t, Store: s, Outbox: o, Holds: o, Ping: ping, close: func() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			client.Disconnect(dctx)
		}}, nil
	default:
		return nil, fmt.Errorf("EVENT_STORE_TYPE (event_sourcing.event_store_type): %q is not supported", t)
	}
}

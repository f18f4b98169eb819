package relay_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
)

// The event store owns the outbox; the relay publishes it through the store's Outbox.
var _ relay.Outbox = (*postgres.Outbox)(nil)

// ExampleNew runs the relay of an event store's outbox until the process is told to stop.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, "postgres://localhost/annals")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	r, err := relay.New(store.Outbox(), exampleEncoder{}, relay.Config{Brokers: []string{"localhost:9092"}})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if err := r.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// exampleEncoder stands for a real one, which encodes with a schema.Catalog.
type exampleEncoder struct{}

func (exampleEncoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	return e.Data, "application/json", 0, nil
}

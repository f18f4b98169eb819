package consume_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
	"github.com/annals-dev/annals/pkg/signing"
)

// ExampleNew runs a projection in a consumer group: each lane's share of a batch is one
// PostgreSQL transaction, the inbox skips events applied before, a stream blocked behind a
// dead letter stays blocked across restarts, and records the relay did not sign are set aside.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, "postgres://localhost/bank")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	// The domain's own Avro schemas, <Type>.v<N>.avsc.
	catalog, err := schema.Load(os.DirFS("schemas"))
	if err != nil {
		log.Fatal(err)
	}
	// Only records the relay signed are events; the schemas of writers deployed before this
	// consumer come from the catalog table.
	key, err := signing.ParseKey(os.Getenv("EVENT_SIGNING_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := signing.NewVerifier(key)
	if err != nil {
		log.Fatal(err)
	}
	const group = "bank-balances"
	project := consume.HandlerFunc(func(ctx context.Context, m *consume.Message) error {
		if m.Event.Type != "MoneyDeposited" {
			return nil
		}
		// The effect commits in the unit's transaction, with the inbox's record of the event.
		_, err := consume.Tx(ctx).Exec(ctx,
			`update balances set cents = cents + ($2::jsonb->>'amount_cents')::bigint where stream_id = $1`,
			m.Event.StreamID, m.Event.Data)
		return err
	})
	c, err := consume.New(consume.Config{
		Brokers:    []string{"localhost:9092"},
		Group:      group,
		Topics:     []string{kafkawire.Topic("bank", "account")},
		DLQTopic:   kafkawire.DeadLetterTopic("bank", group),
		Decode:     consume.NewDecoder(consume.DecoderConfig{Catalog: catalog, Verifier: verifier, Lookup: schema.TableLookup(pool)}),
		Unit:       consume.PostgresUnit(pool),
		Blocks:     consume.PostgresBlocks(pool),
		Middleware: []consume.Middleware{consume.Inbox{Group: group}.Middleware()},
	}, project)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

package consume_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// BenchmarkPostgresUnit is the cost of a unit of work that records one event in the inbox, as
// a handler's one statement: a transaction of PostgresUnit per op. It reports the round trips
// to PostgreSQL, the statements, and the CPU time of the server and of this process per unit.
func BenchmarkPostgresUnit(b *testing.B) {
	_, schema := testenv.SchemaPool(b)
	pool, rt := testenv.CountingPool(b, schema)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		b.Fatal(err)
	}
	unit := consume.PostgresUnit(pool)
	in := consume.Inbox{Group: "bench"}
	claim := func() {
		err := unit(ctx, func(ctx context.Context) error {
			_, err := in.Claim(ctx, consume.Tx(ctx), uuid.Must(uuid.NewV7()))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rt.Bench(b, "unit", 1, claim)
}

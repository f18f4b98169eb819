package readmodel_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// BenchmarkHandleAlone is the projector's cost per event when each unit of work holds one
// event, as when events come at a low rate spread over many partitions: each op applies the
// next event of the orders of orderLife as the Consumer applies a message on its own (its unit
// of work, its middleware with the inbox, Handle). It reports the round trips to PostgreSQL,
// the statements, and the CPU time of the server and of this process per event.
func BenchmarkHandleAlone(b *testing.B) {
	e := newEnv(b)
	var schema string
	if err := e.pool.QueryRow(context.Background(), `select current_schema()`).Scan(&schema); err != nil {
		b.Fatal(err)
	}
	pool, rt := testenv.CountingPool(b, schema)
	handle := readmodel.AloneHandler(readmodel.New(pool, readmodel.Options{}), consume.Config{Group: "bench"})
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7()).String()
	var queue []events.Envelope
	next := func() *consume.Message {
		if len(queue) == 0 {
			queue = orderLife(user)
		}
		m := &consume.Message{Topic: "orders", Key: []byte(queue[0].StreamID), Event: queue[0], Attempt: 1}
		queue = queue[1:]
		return m
	}
	// 32 first: the statements prepared on a connection or two.
	rt.Bench(b, "event", 32, func() {
		if err := handle(ctx, next()); err != nil {
			b.Fatal(err)
		}
	})
}

package benchkit

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// AppendPayload is the data of the events the append workload writes: an ItemAdded of one
// order line, the same row that the pgbench baseline inserts, so that the two move the same
// bytes.
const AppendPayload = `{"item":{"id":"sku-1","name":"A thing","price_cents":1999,"quantity":2}}`

// Appends measures an event store's appends through the library: each worker appends batch
// events at a time to a stream of its own with an exact expected version, as the writer does
// after loading an aggregate. c.EventsPerOp is set to batch.
func Appends(ctx context.Context, s events.Appender, c Closed, batch int) (Throughput, error) {
	payload := events.Event{Type: "ItemAdded", Data: []byte(AppendPayload)}
	evs := slices.Repeat([]events.Event{payload}, batch)
	c.EventsPerOp = batch
	return RunClosed(ctx, c, func() func(context.Context) error {
		stream := "order-" + uuid.NewString()
		expected := events.NoStream()
		return func(ctx context.Context) error {
			res, err := s.Append(ctx, stream, expected, evs, events.AppendOptions{CorrelationID: "bench", CausationID: "bench"})
			expected = events.Exact(res.LastVersion)
			return err
		}
	})
}

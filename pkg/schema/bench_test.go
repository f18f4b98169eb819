package schema_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// BenchmarkDecode is the decoding of one OrderCreated record with two items, as consumers do
// for every record.
func BenchmarkDecode(b *testing.B) {
	c := domain.Catalog()
	value, _, err := c.Encode(events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: "order-0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08", Version: 0,
		GlobalPosition: 17, Type: "OrderCreated", RecordedAt: time.Now().UTC(), CorrelationID: "c-1",
		Data: json.RawMessage(`{"order_id":"0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08","user_id":"0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0",
			"items":[{"id":"sku-1","name":"A thing","price_cents":1999,"quantity":2},{"id":"sku-2","name":"Another","price_cents":500,"quantity":1}],
			"total_cents":4498}`),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(value); err != nil {
			b.Fatal(err)
		}
	}
}

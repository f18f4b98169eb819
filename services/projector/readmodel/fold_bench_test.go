package readmodel

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// BenchmarkFoldBatch is the Go side of HandleBatch for a lane's share of a batch of 1,000
// events (one user of 3 events per 5 orders of 16, as in BenchmarkProjector), every stream
// new: planning the events, folding them into rows and building the writes' arguments.
func BenchmarkFoldBatch(b *testing.B) {
	var evs []events.Envelope
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(stream string, version int64, typ string, data any) events.Envelope {
		raw, err := json.Marshal(data)
		if err != nil {
			b.Fatal(err)
		}
		return events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: stream, Category: events.Category(stream),
			Version: version, Type: typ, SchemaVersion: 1, Data: raw, RecordedAt: at}
	}
	for len(evs) < 1000 {
		user := uuid.Must(uuid.NewV7()).String()
		us := "user-" + user
		n := "Ada Lovelace"
		evs = append(evs, mk(us, 0, domain.EventUserCreated, domain.UserCreated{UserID: user, Email: "a@example.com", Name: "Ada"}),
			mk(us, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &n}),
			mk(us, 2, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &n}))
		for range 5 {
			id := uuid.Must(uuid.NewV7()).String()
			os := "order-" + id
			items := []domain.Item{{ID: "a", Name: "First", PriceCents: 1999, Quantity: 1}, {ID: "b", Name: "Second", PriceCents: 500, Quantity: 3}}
			total := int64(1999 + 1500)
			evs = append(evs, mk(os, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id, UserID: user, Items: items, TotalCents: total}))
			for i := range 12 {
				it := domain.Item{ID: fmt.Sprintf("x%d", i), Name: "Extra", PriceCents: int64(100 + i), Quantity: 2}
				total += it.PriceCents * it.Quantity
				evs = append(evs, mk(os, int64(i+1), domain.EventItemAdded, domain.ItemAdded{Item: it}))
			}
			total -= 1500
			evs = append(evs, mk(os, 13, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "b"}),
				mk(os, 14, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: total}))
		}
	}
	g := generationOf(1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var f batchFold
		for _, e := range evs {
			s, ok, err := plan(e)
			if err != nil || !ok || !f.add(s) {
				b.Fatalf("plan %s: %v", e.Type, err)
			}
		}
		if !f.fold() {
			b.Fatal("the batch does not fold")
		}
		f.queueWrites(&pgx.Batch{}, g)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

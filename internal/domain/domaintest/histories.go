// Package domaintest holds histories of the reference domain's events that every reader of the
// events runs through, each with the state the writer's own aggregate ends in. A reader's test
// feeds each history to the reader and compares what the reader keeps with that state: the
// proof that the projector, the notifier and the writer follow the one contract of package
// domain, and that they refuse the same events.
//
// The histories cover every event type, and the cases where readers used to part ways: two
// lines with one item id, a removal of an item the order does not have, totals that do not
// match. It never touches a server or a clock.
package domaintest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// At is the recording time of a history's first event; each later event is one second after
// the one before. Whole microseconds, as PostgreSQL keeps them.
var At = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// A History is the events of one stream, versions 0, 1, ... in order.
type History struct {
	Name     string
	StreamID string
	Events   []events.Envelope
	// Refused is whether the writer's aggregate refuses the last event. A reader must refuse
	// it too, and keep what the events before it made.
	Refused bool
	// User and Order are the writer's state after the events it takes (all of them, or all
	// but the refused last one): User for a user stream, Order for an order stream.
	User  domain.UserState
	Order domain.OrderState
}

// Category is the history's category, domain.UserCategory or domain.OrderCategory.
func (h History) Category() string { return events.Category(h.StreamID) }

// step is one event of a history: its type and data (marshalled unless a string, which is
// raw JSON).
type step struct {
	typ  string
	data any
}

// Histories returns the histories, with fresh stream ids. Every order belongs to user, which a
// reader that checks an order's owner must know as active.
func Histories(user uuid.UUID) []History {
	tea := domain.Item{ID: "tea", Name: "Tea", PriceCents: 350, Quantity: 2}
	cake := domain.Item{ID: "cake", Name: "Cake", PriceCents: 425, Quantity: 1}
	jam := domain.Item{ID: "jam", Name: "Jam", PriceCents: 199, Quantity: 3}
	greenTea := domain.Item{ID: "tea", Name: "Green tea", PriceCents: 500, Quantity: 1}
	name, email := "Ada Lovelace", "ada@lovelace.example"

	var out []History
	userHistory := func(name string, steps ...step) {
		id := uuid.Must(uuid.NewV7())
		first := step{domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "ada@example.com", Name: "Ada"}}
		for i, s := range steps { // raw JSON may name the user as {id}
			if raw, ok := s.data.(string); ok {
				steps[i].data = strings.ReplaceAll(raw, "{id}", id.String())
			}
		}
		out = append(out, build(name, "user-"+id.String(), domain.User, append([]step{first}, steps...)))
	}
	orderHistory := func(name string, items []domain.Item, total int64, steps ...step) {
		id := uuid.Must(uuid.NewV7())
		first := step{domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(), Items: items, TotalCents: total}}
		out = append(out, build(name, "order-"+id.String(), domain.Order, append([]step{first}, steps...)))
	}

	userHistory("UserCreated")
	userHistory("UserProfileUpdated",
		step{domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &name}},
		step{domain.EventUserProfileUpdated, domain.UserProfileUpdated{Email: &email}},
		step{domain.EventUserProfileUpdated, `{"email":"ada@analytical.example","name":null}`})
	userHistory("UserDeactivated",
		step{domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &name, Email: &email}},
		step{domain.EventUserDeactivated, domain.UserDeactivated{Reason: "moved away"}})
	userHistory("UserPersonalDataErased",
		step{domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &name}},
		step{domain.EventUserPersonalDataErased, `{"user_id":"{id}","erased_at":"2026-03-01T12:00:02Z"}`},
		step{domain.EventUserDeactivated, domain.UserDeactivated{Reason: "erased"}})

	orderHistory("OrderCreated", []domain.Item{tea, cake}, 1125)
	orderHistory("OrderCreatedEmpty", nil, 0)
	orderHistory("ItemAddedAndRemoved", []domain.Item{tea, cake}, 1125,
		step{domain.EventItemAdded, domain.ItemAdded{Item: jam}},
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "tea"}},
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "cake"}})
	orderHistory("ItemRemovedTakesTheFirstOfTwoLines", []domain.Item{tea}, 700,
		step{domain.EventItemAdded, domain.ItemAdded{Item: greenTea}},
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "tea"}})
	orderHistory("ConfirmedAndShipped", []domain.Item{tea}, 700,
		step{domain.EventItemAdded, domain.ItemAdded{Item: cake}},
		step{domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 1125}},
		step{domain.EventOrderShipped, `{}`})
	orderHistory("Cancelled", []domain.Item{tea}, 700,
		step{domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 700}},
		step{domain.EventOrderCancelled, domain.OrderCancelled{Reason: "too slow"}})

	// Events the writer's aggregate refuses.
	orderHistory("RefusedItemRemovedNotInOrder", []domain.Item{tea}, 700,
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "ghost"}})
	orderHistory("RefusedItemRemovedTwice", []domain.Item{tea, cake}, 1125,
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "cake"}},
		step{domain.EventItemRemoved, domain.ItemRemoved{ItemID: "cake"}})
	orderHistory("RefusedItemAddedWithoutQuantity", []domain.Item{tea}, 700,
		step{domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "air", Name: "Air", PriceCents: 100, Quantity: 0}}})
	orderHistory("RefusedItemAddedNegativePrice", []domain.Item{tea}, 700,
		step{domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "refund", Name: "Refund", PriceCents: -100, Quantity: 1}}})
	orderHistory("RefusedOrderCreatedWrongTotal", []domain.Item{tea}, 699)
	orderHistory("RefusedOrderConfirmedWrongTotal", []domain.Item{tea}, 700,
		step{domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 1}})
	return out
}

// build turns steps into a history of def's aggregate, and works out the writer's state by
// applying each event with the aggregate's own Apply.
func build[S any](name, streamID string, def events.Definition[S], steps []step) History {
	h := History{Name: name, StreamID: streamID}
	var state S
	for i, s := range steps {
		raw, ok := s.data.(string)
		data := json.RawMessage(raw)
		if !ok {
			b, err := json.Marshal(s.data)
			if err != nil {
				panic(fmt.Sprintf("domaintest: %s: %v", name, err)) // the steps are fixed above
			}
			data = b
		}
		e := events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: streamID, Category: events.Category(streamID),
			Version: int64(i), Type: s.typ, SchemaVersion: 1, Data: data,
			RecordedAt: At.Add(time.Duration(i) * time.Second),
		}
		h.Events = append(h.Events, e)
		next := state
		if err := def.Apply(&next, e); err != nil {
			if i != len(steps)-1 {
				panic(fmt.Sprintf("domaintest: %s: event %d of %d refused: %v", name, i, len(steps), err))
			}
			h.Refused = true
			break
		}
		state = next
	}
	switch s := any(state).(type) {
	case domain.UserState:
		h.User = s
	case domain.OrderState:
		h.Order = s
	}
	return h
}

package domain

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/annals-dev/annals/pkg/events"
)

// OrderCategory is the category of order streams: "order-<uuid>".
const OrderCategory = "order"

// Event types of orders.
const (
	EventOrderCreated   = "OrderCreated"
	EventItemAdded      = "ItemAdded"
	EventItemRemoved    = "ItemRemoved"
	EventOrderConfirmed = "OrderConfirmed"
	EventOrderCancelled = "OrderCancelled"
	EventOrderShipped   = "OrderShipped"
)

// Item is one line of an order. Its id is unique within the order.
type Item struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

// OrderCreated: a user placed an order.
type OrderCreated struct {
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
}

// ItemAdded: an item was added to a pending order.
type ItemAdded struct {
	Item Item `json:"item"`
}

// ItemRemoved: an item was taken out of a pending order.
type ItemRemoved struct {
	ItemID string `json:"item_id"`
}

// OrderConfirmed: the order was confirmed with this total.
type OrderConfirmed struct {
	TotalCents int64 `json:"total_cents"`
}

// OrderCancelled: the order was cancelled, for a reason.
type OrderCancelled struct {
	Reason string `json:"reason"`
}

// OrderShipped: the confirmed order left the warehouse.
type OrderShipped struct{}

// OrderStatus is the life-cycle state of an order: pending, then confirmed, then shipped;
// pending or confirmed orders can be cancelled.
type OrderStatus string

// The statuses of an order.
const (
	OrderStatusPending   OrderStatus = "pending"
	OrderStatusConfirmed OrderStatus = "confirmed"
	OrderStatusCancelled OrderStatus = "cancelled"
	OrderStatusShipped   OrderStatus = "shipped"
)

// OrderState is an order as its events made it.
type OrderState struct {
	ID                 string      `json:"id"`
	UserID             string      `json:"user_id"`
	Status             OrderStatus `json:"status"`
	Items              []Item      `json:"items"`
	TotalCents         int64       `json:"total_cents"`
	CancellationReason string      `json:"cancellation_reason,omitempty"`
}

// Item returns the order's item with the given id.
func (s OrderState) Item(id string) (Item, bool) {
	i := slices.IndexFunc(s.Items, func(it Item) bool { return it.ID == id })
	if i < 0 {
		return Item{}, false
	}
	return s.Items[i], true
}

// Order defines the order aggregate.
var Order = events.Definition[OrderState]{
	Category:           OrderCategory,
	StateSchemaVersion: 1,
	Apply:              applyOrder,
}

// applyOrder never modifies the items slice it was given: Aggregate.Record applies to a
// shallow copy of the state and keeps the old one when Apply fails.
func applyOrder(s *OrderState, e events.Envelope) error {
	switch e.Type {
	case EventOrderCreated:
		var d OrderCreated
		if err := decode(e, &d); err != nil {
			return err
		}
		total, err := d.Check()
		if err != nil {
			return fmt.Errorf("%s: %w", e.Type, err)
		}
		*s = OrderState{ID: d.OrderID, UserID: d.UserID, Status: OrderStatusPending,
			Items: append([]Item{}, d.Items...), TotalCents: total}
	case EventItemAdded:
		var d ItemAdded
		if err := decode(e, &d); err != nil {
			return err
		}
		if err := d.Item.Check(); err != nil {
			return fmt.Errorf("%s: item: %w", e.Type, err)
		}
		items := append(slices.Clip(s.Items), d.Item) // Clip: always a new array
		total, ok := TotalCents(items)
		if !ok {
			return fmt.Errorf("%s: the total overflows", e.Type)
		}
		s.Items, s.TotalCents = items, total
	case EventItemRemoved:
		var d ItemRemoved
		if err := decode(e, &d); err != nil {
			return err
		}
		items, _, ok := RemoveLine(s.Items, d.ItemID)
		if !ok {
			return fmt.Errorf("%s: no item %q in the order", e.Type, d.ItemID)
		}
		total, _ := TotalCents(items) // a subset of items whose total fitted
		s.Items, s.TotalCents = items, total
	case EventOrderConfirmed:
		var d OrderConfirmed
		if err := decode(e, &d); err != nil {
			return err
		}
		if d.TotalCents != s.TotalCents {
			return fmt.Errorf("%s: total_cents %d, but the items add up to %d", e.Type, d.TotalCents, s.TotalCents)
		}
		s.Status = OrderStatusConfirmed
	case EventOrderCancelled:
		var d OrderCancelled
		if err := decode(e, &d); err != nil {
			return err
		}
		s.Status = OrderStatusCancelled
		s.CancellationReason = d.Reason
	case EventOrderShipped:
		s.Status = OrderStatusShipped
	default:
		return fmt.Errorf("order: unknown event type %q", e.Type)
	}
	return nil
}

// NormalizeItems checks every item (NormalizeItem), that ids are unique, that there are at
// most MaxItems and that the total fits in int64. It returns the items with trimmed names and
// their total.
func NormalizeItems(field string, items []Item) ([]Item, int64, error) {
	if len(items) > MaxItems {
		return nil, 0, invalid(field, "at most %d items, got %d", MaxItems, len(items))
	}
	out := make([]Item, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		at := field + "[" + strconv.Itoa(i) + "]"
		n, err := NormalizeItem(it)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				return nil, 0, ve.In(at)
			}
			return nil, 0, err
		}
		if seen[n.ID] {
			return nil, 0, invalid(at+".id", "duplicate item id %q", n.ID)
		}
		seen[n.ID] = true
		out[i] = n
	}
	total, ok := TotalCents(out)
	if !ok {
		return nil, 0, invalid(field, "the order total overflows a 64-bit number of cents")
	}
	return out, total, nil
}

// CreateOrder records OrderCreated for user, who must exist and be active. The order may
// start without items (it cannot be confirmed until it has some).
func CreateOrder(a *events.Aggregate[OrderState], user *events.Aggregate[UserState], items []Item) error {
	if a.Exists() {
		return ruleErr(RuleOrderAlreadyExists, "order %s already exists", a.ID())
	}
	if user == nil || !user.Exists() {
		id := ""
		if user != nil {
			id = user.ID() + " "
		}
		return ruleErr(RuleUserNotFound, "user %sdoes not exist", id)
	}
	if !user.State().Active() {
		return ruleErr(RuleUserDeactivated, "user %s is deactivated and cannot place orders", user.ID())
	}
	items, total, err := NormalizeItems("items", items)
	if err != nil {
		return err
	}
	return a.Record(EventOrderCreated, OrderCreated{OrderID: a.ID(), UserID: user.ID(), Items: items, TotalCents: total})
}

func existingOrder(a *events.Aggregate[OrderState]) error {
	if !a.Exists() {
		return ruleErr(RuleOrderNotFound, "order %s does not exist", a.ID())
	}
	return nil
}

func modifiable(a *events.Aggregate[OrderState]) error {
	if err := existingOrder(a); err != nil {
		return err
	}
	if st := a.State().Status; st != OrderStatusPending {
		return ruleErr(RuleOrderNotModifiable, "order %s is %s: items can change only while it is pending", a.ID(), st)
	}
	return nil
}

// AddItem records ItemAdded on a pending order that does not have an item with this id yet.
func AddItem(a *events.Aggregate[OrderState], item Item) error {
	if err := modifiable(a); err != nil {
		return err
	}
	item, err := NormalizeItem(item)
	if err != nil {
		return err
	}
	s := a.State()
	if _, ok := s.Item(item.ID); ok {
		return ruleErr(RuleItemAlreadyInOrder, "order %s already has an item with id %q", a.ID(), item.ID)
	}
	if len(s.Items) >= MaxItems {
		return ruleErr(RuleTooManyItems, "order %s already has the maximum of %d items", a.ID(), MaxItems)
	}
	line, _ := item.LineTotal() // bounded by NormalizeItem
	if _, ok := addInt64(s.TotalCents, line); !ok {
		return ruleErr(RuleTotalOverflow, "adding this item would overflow the total of order %s", a.ID())
	}
	return a.Record(EventItemAdded, ItemAdded{Item: item})
}

// RemoveItem records ItemRemoved on a pending order that has an item with this id.
func RemoveItem(a *events.Aggregate[OrderState], itemID string) error {
	if err := modifiable(a); err != nil {
		return err
	}
	if err := ValidateItemID("item_id", itemID); err != nil {
		return err
	}
	if _, ok := a.State().Item(itemID); !ok {
		return ruleErr(RuleItemNotInOrder, "order %s has no item with id %q", a.ID(), itemID)
	}
	return a.Record(EventItemRemoved, ItemRemoved{ItemID: itemID})
}

// ConfirmOrder records OrderConfirmed on a pending order with at least one item.
func ConfirmOrder(a *events.Aggregate[OrderState]) error {
	if err := existingOrder(a); err != nil {
		return err
	}
	s := a.State()
	switch s.Status {
	case OrderStatusConfirmed, OrderStatusShipped:
		return ruleErr(RuleOrderAlreadyConfirmed, "order %s is already confirmed", a.ID())
	case OrderStatusCancelled:
		return ruleErr(RuleOrderCancelled, "order %s is cancelled", a.ID())
	}
	if len(s.Items) == 0 {
		return ruleErr(RuleOrderHasNoItems, "order %s has no items", a.ID())
	}
	return a.Record(EventOrderConfirmed, OrderConfirmed{TotalCents: s.TotalCents})
}

// CancelOrder records OrderCancelled on an order that is neither cancelled nor shipped.
func CancelOrder(a *events.Aggregate[OrderState], reason string) error {
	if err := existingOrder(a); err != nil {
		return err
	}
	switch a.State().Status {
	case OrderStatusCancelled:
		return ruleErr(RuleOrderAlreadyCancelled, "order %s is already cancelled", a.ID())
	case OrderStatusShipped:
		return ruleErr(RuleOrderAlreadyShipped, "order %s is already shipped and cannot be cancelled", a.ID())
	}
	reason, err := NormalizeReason("reason", reason)
	if err != nil {
		return err
	}
	return a.Record(EventOrderCancelled, OrderCancelled{Reason: reason})
}

// ShipOrder records OrderShipped on a confirmed order.
func ShipOrder(a *events.Aggregate[OrderState]) error {
	if err := existingOrder(a); err != nil {
		return err
	}
	switch a.State().Status {
	case OrderStatusShipped:
		return ruleErr(RuleOrderAlreadyShipped, "order %s is already shipped", a.ID())
	case OrderStatusCancelled:
		return ruleErr(RuleOrderCancelled, "order %s is cancelled", a.ID())
	case OrderStatusPending:
		return ruleErr(RuleOrderNotConfirmed, "order %s is not confirmed yet", a.ID())
	}
	return a.Record(EventOrderShipped, OrderShipped{})
}

package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// The rules in this file are the ones every reader of the events shares with the aggregates:
// what makes an event's payload one an order or a user can take, and what an event does to the
// state. The aggregates' Apply functions, the projector's read models and the notifier's order
// table all follow them, so that each reader ends where the writer's aggregate ends, and
// refuses what it refuses.

// Check reports whether an order line read from an event is one an order can hold: an id, a
// price of at least 0, a quantity of at least 1 and a line total that fits in int64. It is
// looser than NormalizeItem, which also bounds what a command may ask for: an event recorded
// under older limits stays readable.
func (it Item) Check() error {
	switch {
	case it.ID == "":
		return errors.New("id is empty")
	case it.PriceCents < 0:
		return fmt.Errorf("price_cents %d is negative", it.PriceCents)
	case it.Quantity < 1:
		return fmt.Errorf("quantity %d is below 1", it.Quantity)
	}
	if _, ok := it.LineTotal(); !ok {
		return errors.New("price_cents times quantity overflows")
	}
	return nil
}

// Check reports whether the lines and the total of an OrderCreated agree: every line passes
// Item.Check and total_cents is their sum. It returns the total.
func (d OrderCreated) Check() (int64, error) {
	for i, it := range d.Items {
		if err := it.Check(); err != nil {
			return 0, fmt.Errorf("items[%d]: %w", i, err)
		}
	}
	total, ok := TotalCents(d.Items)
	if !ok || total != d.TotalCents {
		return 0, fmt.Errorf("total_cents %d does not match the items", d.TotalCents)
	}
	return total, nil
}

// Check reports whether a UserCreated names its user: an email and a name.
func (d UserCreated) Check() error {
	if d.Email == "" || d.Name == "" {
		return errors.New("data needs email and name")
	}
	return nil
}

// RemoveLine is what ItemRemoved does to an order's lines: it takes out the first line with
// the id and returns the others (in a new slice; items is not modified) and the line taken
// out. ok is false when no line has the id: the event is then refused.
func RemoveLine(items []Item, id string) (rest []Item, removed Item, ok bool) {
	i := slices.IndexFunc(items, func(it Item) bool { return it.ID == id })
	if i < 0 {
		return items, Item{}, false
	}
	return slices.Delete(slices.Clone(items), i, i+1), items[i], true
}

// StreamUUID is the id of a stream of the category, <category>-<uuid>, as the writer records
// it: a non-nil UUID in its canonical lower-case form. Readers refuse any other stream id.
func StreamUUID(streamID, category string) (uuid.UUID, error) {
	rest, ok := strings.CutPrefix(streamID, category+"-")
	if !ok {
		return uuid.Nil, fmt.Errorf("stream id %q is not of category %s", streamID, category)
	}
	id, err := CanonicalUUID(rest)
	if err != nil {
		return uuid.Nil, fmt.Errorf("stream id %q: %w", streamID, err)
	}
	return id, nil
}

// CanonicalUUID parses a non-nil UUID in its canonical lower-case form, the only form the
// writer records in stream ids and payloads.
func CanonicalUUID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil || id.String() != s {
		return uuid.Nil, fmt.Errorf("%q is not a lower-case UUID", s)
	}
	return id, nil
}

package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// applyOrder records what the order emails need of an order event: the order's owner and
// lines. The lines change by the reference domain's own rules (domain.Order.Apply), so the
// notifier's order is the writer's, and an event the writer's aggregate refuses (an item
// removed that the order does not have, a total that does not match its lines) is Permanent
// and changes nothing. A redelivered event changes nothing: the row keeps the version of the
// last event applied. An item event of an order the notifier has not seen created changes
// nothing either; the order's email then fails as unknown.
func (n *Notifier) applyOrder(ctx context.Context, e events.Envelope) error {
	id, err := domain.StreamUUID(e.StreamID, domain.OrderCategory)
	if err != nil {
		return consume.Permanent(err)
	}
	var (
		s       domain.OrderState
		version int64 = -1
	)
	if e.Type != domain.EventOrderCreated {
		o, v, ok, err := readOrder(ctx, n.pool, id)
		if err != nil {
			return dbError(err)
		}
		if !ok || v >= e.Version {
			return nil
		}
		s = domain.OrderState{ID: id.String(), UserID: o.UserID.String(), Status: domain.OrderStatusPending,
			Items: o.Items, TotalCents: o.TotalCents}
		version = v
	}
	if err := domain.Order.Apply(&s, e); err != nil {
		return consume.Permanent(fmt.Errorf("%s %s@%d: %w", e.Type, e.StreamID, e.Version, err))
	}
	items, err := itemsJSON(s.Items)
	if err != nil {
		return consume.Permanent(err)
	}
	if version < 0 {
		userID, err := uuid.Parse(s.UserID)
		if err != nil {
			return consume.Permanent(fmt.Errorf("%s: user_id %q is not a UUID", e.Type, s.UserID))
		}
		_, err = n.pool.Exec(ctx, `insert into annals_notifier_orders as o (order_id, user_id, items, total_cents, version)
			values ($1, $2, $3::jsonb, $4, $5)
			on conflict (order_id) do update set user_id = excluded.user_id, items = excluded.items,
				total_cents = excluded.total_cents, version = excluded.version
			where o.version < excluded.version`, id, userID, items, s.TotalCents, e.Version)
		return dbError(err)
	}
	tag, err := n.pool.Exec(ctx, `update annals_notifier_orders set items = $2::jsonb, total_cents = $3, version = $4
		where order_id = $1 and version = $5`, id, items, s.TotalCents, e.Version, version)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		// Another delivery of the stream's events got there first; read the row again.
		return fmt.Errorf("%s %s@%d: the order changed while the event was applied", e.Type, e.StreamID, e.Version)
	}
	return nil
}

// order is what the notifier knows of an order.
type order struct {
	UserID     uuid.UUID
	Items      []domain.Item
	TotalCents int64
}

func lookupOrder(ctx context.Context, db *pgxpool.Pool, id uuid.UUID) (o order, ok bool, err error) {
	o, _, ok, err = readOrder(ctx, db, id)
	return o, ok, err
}

// readOrder reads an order and the version of the last event applied to it.
func readOrder(ctx context.Context, db *pgxpool.Pool, id uuid.UUID) (o order, version int64, ok bool, err error) {
	var items []byte
	err = db.QueryRow(ctx, `select user_id, items, total_cents, version from annals_notifier_orders where order_id = $1`, id).
		Scan(&o.UserID, &items, &o.TotalCents, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return order{}, 0, false, nil
	}
	if err != nil {
		return order{}, 0, false, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return order{}, 0, false, fmt.Errorf("order %s: items: %w", id, err)
	}
	return o, version, true, nil
}

// itemsJSON is the JSON array of items, with their texts made storable.
func itemsJSON(items []domain.Item) ([]byte, error) {
	out := make([]domain.Item, len(items))
	for i, it := range items {
		it.ID, it.Name = clean(it.ID), clean(it.Name)
		out[i] = it
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	return b, nil
}

// decodeData decodes an event's data; malformed data is Permanent.
func decodeData(e events.Envelope, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return consume.Permanent(fmt.Errorf("%s data: %w", e.Type, err))
	}
	return nil
}

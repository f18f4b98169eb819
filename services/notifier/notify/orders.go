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
// lines. One statement, guarded by the stream's version, so a redelivered event changes
// nothing. An item event of an order the notifier has not seen created changes nothing
// either; the order's email then fails as unknown.
func (n *Notifier) applyOrder(ctx context.Context, e events.Envelope) error {
	id, err := streamUUID(e.StreamID, domain.OrderCategory)
	if err != nil {
		return consume.Permanent(err)
	}
	switch e.Type {
	case domain.EventOrderCreated:
		var d domain.OrderCreated
		if err := decodeData(e, &d); err != nil {
			return err
		}
		userID, err := uuid.Parse(d.UserID)
		if err != nil {
			return consume.Permanent(fmt.Errorf("%s: user_id %q is not a UUID", e.Type, d.UserID))
		}
		items, err := itemsJSON(d.Items)
		if err != nil {
			return consume.Permanent(err)
		}
		_, err = n.pool.Exec(ctx, `insert into annals_notifier_orders as o (order_id, user_id, items, total_cents, version)
			values ($1, $2, $3::jsonb, $4, $5)
			on conflict (order_id) do update set user_id = excluded.user_id, items = excluded.items,
				total_cents = excluded.total_cents, version = excluded.version
			where o.version < excluded.version`, id, userID, items, d.TotalCents, e.Version)
		return dbError(err)
	case domain.EventItemAdded:
		var d domain.ItemAdded
		if err := decodeData(e, &d); err != nil {
			return err
		}
		items, err := itemsJSON([]domain.Item{d.Item})
		if err != nil {
			return consume.Permanent(err)
		}
		_, err = n.pool.Exec(ctx, `update annals_notifier_orders
			set items = items || $2::jsonb, total_cents = total_cents + $3::bigint * $4::bigint, version = $5
			where order_id = $1 and version < $5`, id, items, d.Item.PriceCents, d.Item.Quantity, e.Version)
		return dbError(err)
	case domain.EventItemRemoved:
		var d domain.ItemRemoved
		if err := decodeData(e, &d); err != nil {
			return err
		}
		_, err = n.pool.Exec(ctx, `update annals_notifier_orders o set
				items = coalesce((select jsonb_agg(it order by i) from jsonb_array_elements(o.items) with ordinality t(it, i)
					where it->>'id' <> $2), '[]'::jsonb),
				total_cents = o.total_cents - coalesce((select sum((it->>'price_cents')::bigint * (it->>'quantity')::bigint)
					from jsonb_array_elements(o.items) it where it->>'id' = $2), 0),
				version = $3
			where order_id = $1 and version < $3`, id, clean(d.ItemID), e.Version)
		return dbError(err)
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
	var items []byte
	err = db.QueryRow(ctx, `select user_id, items, total_cents from annals_notifier_orders where order_id = $1`, id).
		Scan(&o.UserID, &items, &o.TotalCents)
	if errors.Is(err, pgx.ErrNoRows) {
		return order{}, false, nil
	}
	if err != nil {
		return order{}, false, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return order{}, false, fmt.Errorf("order %s: items: %w", id, err)
	}
	return o, true, nil
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

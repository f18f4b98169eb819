package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// User is a user as the read model holds it.
type User struct {
	ID                 uuid.UUID         `json:"id"`
	StreamID           string            `json:"stream_id"`
	Version            int64             `json:"version"`
	Email              string            `json:"email"`
	Name               string            `json:"name"`
	Status             domain.UserStatus `json:"status"`
	DeactivationReason string            `json:"deactivation_reason,omitempty"`
	CreatedAt          time.Time         `json:"created_at"`
	UpdatedAt          time.Time         `json:"updated_at"`
	DeactivatedAt      *time.Time        `json:"deactivated_at,omitempty"`
}

// Order is an order as the read model holds it. ItemCount is the number of lines.
type Order struct {
	ID                 uuid.UUID          `json:"id"`
	StreamID           string             `json:"stream_id"`
	Version            int64              `json:"version"`
	UserID             uuid.UUID          `json:"user_id"`
	Status             domain.OrderStatus `json:"status"`
	Items              []domain.Item      `json:"items"`
	TotalCents         int64              `json:"total_cents"`
	ItemCount          int                `json:"item_count"`
	CancellationReason string             `json:"cancellation_reason,omitempty"`
	CreatedAt          time.Time          `json:"created_at"`
	UpdatedAt          time.Time          `json:"updated_at"`
	ConfirmedAt        *time.Time         `json:"confirmed_at,omitempty"`
	CancelledAt        *time.Time         `json:"cancelled_at,omitempty"`
	ShippedAt          *time.Time         `json:"shipped_at,omitempty"`
}

// OrderStats summarise the orders.
//
// An order counts as confirmed while it is confirmed or shipped (a shipped order was
// confirmed first); an order cancelled after its confirmation counts as cancelled only.
// Revenue is the sum of the totals of the confirmed orders, so a cancellation takes its order's
// total out again. The conversion rate is the percentage of all orders that are confirmed,
// rounded to two decimals, as the guide's OrderProjection gives it; 0 without orders.
type OrderStats struct {
	TotalOrders       int64   `json:"total_orders"`
	ConfirmedOrders   int64   `json:"confirmed_orders"`
	CancelledOrders   int64   `json:"cancelled_orders"`
	TotalRevenueCents int64   `json:"total_revenue_cents"`
	ConversionRate    float64 `json:"conversion_rate"`
}

// Paging limits of the list queries.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// UserQuery selects a page of users in id order.
type UserQuery struct {
	Status domain.UserStatus // empty: every status
	// After is the id of the last user of the previous page; uuid.Nil for the first page
	// (no stream has the nil UUID).
	After uuid.UUID
	Limit int // DefaultLimit when 0, at most MaxLimit
}

// OrderQuery selects a page of orders in id order.
type OrderQuery struct {
	Status domain.OrderStatus // empty: every status
	UserID uuid.UUID          // uuid.Nil: every user's
	After  uuid.UUID
	Limit  int
}

// NotCaughtUpError: the read model has not applied the requested stream version within the
// wait.
type NotCaughtUpError struct {
	StreamID   string
	Version    int64 // the version the read model is at
	MinVersion int64
}

func (e *NotCaughtUpError) Error() string {
	return fmt.Sprintf("the read model of %s is at version %d, not yet at %d", e.StreamID, e.Version, e.MinVersion)
}

const (
	userColumns  = `id, version, email, name, status, coalesce(deactivation_reason, ''), created_at, updated_at, deactivated_at`
	orderColumns = `id, version, user_id, status, items, total_cents, item_count, coalesce(cancellation_reason, ''),
		created_at, updated_at, confirmed_at, cancelled_at, shipped_at`
)

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Version, &u.Email, &u.Name, &u.Status, &u.DeactivationReason,
		&u.CreatedAt, &u.UpdatedAt, &u.DeactivatedAt)
	u.StreamID = events.StreamID(domain.UserCategory, u.ID.String())
	u.CreatedAt, u.UpdatedAt, u.DeactivatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC(), utc(u.DeactivatedAt)
	return u, err
}

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	err := row.Scan(&o.ID, &o.Version, &o.UserID, &o.Status, &o.Items, &o.TotalCents, &o.ItemCount,
		&o.CancellationReason, &o.CreatedAt, &o.UpdatedAt, &o.ConfirmedAt, &o.CancelledAt, &o.ShippedAt)
	o.StreamID = events.StreamID(domain.OrderCategory, o.ID.String())
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	o.ConfirmedAt, o.CancelledAt, o.ShippedAt = utc(o.ConfirmedAt), utc(o.CancelledAt), utc(o.ShippedAt)
	if o.Items == nil {
		o.Items = []domain.Item{}
	}
	return o, err
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// read runs fn on the live generation. Queries take no lock: a query that read the pointer
// just before a rebuild dropped the old generation finds its table gone, and runs again on
// the new one.
func (p *Projection) read(ctx context.Context, fn func(g *generation) error) error {
	for attempt := 0; ; attempt++ {
		g, err := liveGeneration(ctx, p.pool)
		if err != nil {
			return err
		}
		if p.readHook != nil {
			p.readHook()
		}
		err = fn(g)
		if attempt < 3 && postgres.UndefinedTable(err) {
			continue
		}
		return err
	}
}

// User returns the user with the given id; an error wrapping events.ErrNotFound when the read
// model has none.
func (p *Projection) User(ctx context.Context, id uuid.UUID) (User, error) {
	var u User
	err := p.read(ctx, func(g *generation) error {
		var err error
		u, err = scanUser(p.pool.QueryRow(ctx, `select `+userColumns+` from `+g.users+` where id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, events.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// Order returns the order with the given id; an error wrapping events.ErrNotFound when the
// read model has none.
func (p *Projection) Order(ctx context.Context, id uuid.UUID) (Order, error) {
	var o Order
	err := p.read(ctx, func(g *generation) error {
		var err error
		o, err = scanOrder(p.pool.QueryRow(ctx, `select `+orderColumns+` from `+g.orders+` where id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("order %s: %w", id, events.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("order %s: %w", id, err)
	}
	return o, nil
}

// Wait says how long a read may wait for the read model to reach a stream version.
type Wait struct {
	// MinVersion is the stream version the row must have reached; negative: any version
	// (then a wait waits for the row to exist).
	MinVersion int64
	// For is how long to wait; 0 answers at once.
	For time.Duration
}

// UserAt returns the user once its row has reached w.MinVersion, polling for at most w.For.
// Still behind after the wait: a *NotCaughtUpError; still absent: events.ErrNotFound.
func (p *Projection) UserAt(ctx context.Context, id uuid.UUID, w Wait) (User, error) {
	return waitFor(ctx, p, w, events.StreamID(domain.UserCategory, id.String()), func(ctx context.Context) (User, int64, error) {
		u, err := p.User(ctx, id)
		return u, u.Version, err
	})
}

// OrderAt is UserAt for orders.
func (p *Projection) OrderAt(ctx context.Context, id uuid.UUID, w Wait) (Order, error) {
	return waitFor(ctx, p, w, events.StreamID(domain.OrderCategory, id.String()), func(ctx context.Context) (Order, int64, error) {
		o, err := p.Order(ctx, id)
		return o, o.Version, err
	})
}

// Polling intervals of a wait: they start short, since the projector usually trails the
// writer by milliseconds, and double up to a bound. A commit of this process that applies the
// stream ends the pause at once (wakeups); the polls find what other instances apply.
const (
	firstPoll = 2 * time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

func waitFor[T any](ctx context.Context, p *Projection, w Wait, streamID string, get func(context.Context) (T, int64, error)) (T, error) {
	deadline := time.Now().Add(w.For)
	delay := p.polls[0]
	for {
		var woken <-chan struct{}
		release := func() {}
		if w.For > 0 {
			woken, release = p.wake.watch(streamID)
		}
		v, version, err := get(ctx)
		switch {
		case err == nil && version >= w.MinVersion:
			release()
			return v, nil
		case err != nil && !errors.Is(err, events.ErrNotFound):
			release()
			return v, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			release()
			if err != nil {
				return v, err
			}
			return v, &NotCaughtUpError{StreamID: streamID, Version: version, MinVersion: w.MinVersion}
		}
		if p.pollHook != nil {
			p.pollHook()
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			release()
			return v, ctx.Err()
		case <-woken:
			t.Stop()
		case <-t.C:
			delay = min(2*delay, p.polls[1])
		}
		release()
	}
}

func limitOf(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// Users returns a page of users in id order, and whether more follow.
func (p *Projection) Users(ctx context.Context, q UserQuery) ([]User, bool, error) {
	limit := limitOf(q.Limit)
	where, args := []string{"id > $1"}, []any{q.After}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	args = append(args, limit+1)
	out := []User{}
	err := p.read(ctx, func(g *generation) error {
		rows, err := p.pool.Query(ctx, `select `+userColumns+` from `+g.users+` where `+strings.Join(where, " and ")+
			` order by id limit $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("users: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// Orders returns a page of orders in id order, and whether more follow.
func (p *Projection) Orders(ctx context.Context, q OrderQuery) ([]Order, bool, error) {
	limit := limitOf(q.Limit)
	where, args := []string{"id > $1"}, []any{q.After}
	if q.UserID != uuid.Nil {
		args = append(args, q.UserID)
		where = append(where, "user_id = $"+strconv.Itoa(len(args)))
	}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	args = append(args, limit+1)
	out := []Order{}
	err := p.read(ctx, func(g *generation) error {
		rows, err := p.pool.Query(ctx, `select `+orderColumns+` from `+g.orders+` where `+strings.Join(where, " and ")+
			` order by id limit $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Order, error) { return scanOrder(r) })
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("orders: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// UserOrders returns a page of the user's orders, and whether more follow; an error wrapping
// events.ErrNotFound when the read model has no such user.
func (p *Projection) UserOrders(ctx context.Context, userID uuid.UUID, q OrderQuery) ([]Order, bool, error) {
	var exists bool
	err := p.read(ctx, func(g *generation) error {
		return p.pool.QueryRow(ctx, `select exists (select 1 from `+g.users+` where id = $1)`, userID).Scan(&exists)
	})
	if err != nil {
		return nil, false, fmt.Errorf("user %s: %w", userID, err)
	}
	if !exists {
		return nil, false, fmt.Errorf("user %s: %w", userID, events.ErrNotFound)
	}
	q.UserID = userID
	return p.Orders(ctx, q)
}

// OrderStats computes the statistics in one query over the orders.
func (p *Projection) OrderStats(ctx context.Context) (OrderStats, error) {
	var s OrderStats
	err := p.read(ctx, func(g *generation) error {
		return p.pool.QueryRow(ctx, `select count(*),
				count(*) filter (where status in ('confirmed', 'shipped')),
				count(*) filter (where status = 'cancelled'),
				coalesce(sum(total_cents) filter (where status in ('confirmed', 'shipped')), 0)::bigint,
				coalesce(round(100.0 * count(*) filter (where status in ('confirmed', 'shipped')) / nullif(count(*), 0), 2), 0)::float8
			from `+g.orders).Scan(&s.TotalOrders, &s.ConfirmedOrders, &s.CancelledOrders, &s.TotalRevenueCents, &s.ConversionRate)
	})
	if err != nil {
		return s, fmt.Errorf("order statistics: %w", err)
	}
	return s, nil
}

// Generation returns the live generation of the read models.
func (p *Projection) Generation(ctx context.Context) (int, error) {
	g, err := liveGeneration(ctx, p.pool)
	if err != nil {
		return 0, err
	}
	return g.n, nil
}

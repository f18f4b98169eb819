package readmodel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

func TestMigrate(t *testing.T) {
	e := newEnv(t) // migrated once
	ctx := context.Background()
	applied, err := readmodel.Migrate(ctx, e.pool, nil)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate: %v, %v; want nothing applied", applied, err)
	}
	v, latest, err := readmodel.SchemaVersion(ctx, e.pool)
	if err != nil || v != latest || v < 1 {
		t.Fatalf("SchemaVersion = %d, %d, %v", v, latest, err)
	}
	if g, err := e.proj.Generation(ctx); err != nil || g != 1 {
		t.Fatalf("Generation = %d, %v; want 1", g, err)
	}
}

// orderEvents are the events of an order of user with one line of price cents.
func orderEvents(user, id uuid.UUID, price int64, then ...string) []events.Envelope {
	s := orderStream(id)
	out := []events.Envelope{ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(),
		Items: []domain.Item{{ID: "x", Name: "X", PriceCents: price, Quantity: 1}}, TotalCents: price})}
	for _, typ := range then {
		var data any
		switch typ {
		case domain.EventOrderConfirmed:
			data = domain.OrderConfirmed{TotalCents: price}
		case domain.EventOrderCancelled:
			data = domain.OrderCancelled{Reason: "no"}
		default:
			data = struct{}{}
		}
		out = append(out, ev(s, int64(len(out)), typ, data))
	}
	return out
}

func TestProjection_OrderStats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	got, err := e.proj.OrderStats(ctx)
	if err != nil || got != (readmodel.OrderStats{}) {
		t.Fatalf("without orders: %+v, %v; want zeros", got, err)
	}
	user := newID()
	for _, evs := range [][]events.Envelope{
		orderEvents(user, newID(), 1000),                                                         // pending
		orderEvents(user, newID(), 2000, domain.EventOrderConfirmed),                             // confirmed: revenue
		orderEvents(user, newID(), 3000, domain.EventOrderConfirmed, domain.EventOrderShipped),   // shipped: revenue
		orderEvents(user, newID(), 4000, domain.EventOrderConfirmed, domain.EventOrderCancelled), // cancelled after confirmation
		orderEvents(user, newID(), 5000, domain.EventOrderCancelled),                             // cancelled
		orderEvents(user, newID(), 6000),                                                         // pending
	} {
		e.mustApply(t, evs...)
	}
	got, err = e.proj.OrderStats(ctx)
	want := readmodel.OrderStats{TotalOrders: 6, ConfirmedOrders: 2, CancelledOrders: 2, TotalRevenueCents: 5000, ConversionRate: 33.33}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}

func TestProjection_Users_Paging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	want := map[domain.UserStatus][]uuid.UUID{}
	var all []uuid.UUID
	for i := range 23 {
		id := newID()
		s := userStream(id)
		e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{Email: "p@example.com", Name: "P"}))
		status := domain.UserStatusActive
		if i%3 == 0 {
			e.mustApply(t, ev(s, 1, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "r"}))
			status = domain.UserStatusDeactivated
		}
		want[status] = append(want[status], id)
		all = append(all, id) // UUIDv7: in id order
	}
	walk := func(t *testing.T, status domain.UserStatus, limit int) []uuid.UUID {
		var got []uuid.UUID
		after := uuid.Nil
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatal("paging does not end")
			}
			page, more, err := e.proj.Users(ctx, readmodel.UserQuery{Status: status, After: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit || (more && len(page) != limit) {
				t.Fatalf("page of %d with more=%v at limit %d", len(page), more, limit)
			}
			for _, u := range page {
				if status != "" && u.Status != status {
					t.Errorf("user %s is %s, asked for %s", u.ID, u.Status, status)
				}
				got = append(got, u.ID)
			}
			if !more {
				return got
			}
			after = page[len(page)-1].ID
		}
	}
	for _, tc := range []struct {
		name   string
		status domain.UserStatus
		want   []uuid.UUID
	}{
		{"All", "", all},
		{"Active", domain.UserStatusActive, want[domain.UserStatusActive]},
		{"Deactivated", domain.UserStatusDeactivated, want[domain.UserStatusDeactivated]},
	} {
		for _, limit := range []int{1, 5, 8, 23, 500} {
			got := walk(t, tc.status, limit)
			if jsonOf(got) != jsonOf(tc.want) {
				t.Errorf("%s, limit %d: walked %v, want every row once in id order: %v", tc.name, limit, got, tc.want)
			}
		}
	}
}

func TestProjection_Orders_Paging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := newID(), newID()
	e.mustApply(t, ev(userStream(a), 0, domain.EventUserCreated, domain.UserCreated{Email: "a@example.com", Name: "A"}))
	var ofA, confirmed []uuid.UUID
	for i := range 12 {
		id, user := newID(), a
		if i%2 == 1 {
			user = b
		} else {
			ofA = append(ofA, id)
		}
		var then []string
		if i%3 == 0 {
			then = []string{domain.EventOrderConfirmed}
			confirmed = append(confirmed, id)
		}
		e.mustApply(t, orderEvents(user, id, 100, then...)...)
	}
	collect := func(list func(after uuid.UUID) ([]readmodel.Order, bool, error)) []uuid.UUID {
		var out []uuid.UUID
		for after := uuid.Nil; ; {
			page, more, err := list(after)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page {
				out = append(out, o.ID)
			}
			if !more {
				return out
			}
			after = page[len(page)-1].ID
		}
	}
	got := collect(func(after uuid.UUID) ([]readmodel.Order, bool, error) {
		return e.proj.UserOrders(ctx, a, readmodel.OrderQuery{After: after, Limit: 4})
	})
	if jsonOf(got) != jsonOf(ofA) {
		t.Errorf("orders of a: %v, want %v", got, ofA)
	}
	got = collect(func(after uuid.UUID) ([]readmodel.Order, bool, error) {
		return e.proj.Orders(ctx, readmodel.OrderQuery{Status: domain.OrderStatusConfirmed, After: after, Limit: 3})
	})
	if jsonOf(got) != jsonOf(confirmed) {
		t.Errorf("confirmed orders: %v, want %v", got, confirmed)
	}
	// b has orders but no user row: the read model does not know the user.
	if _, _, err := e.proj.UserOrders(ctx, b, readmodel.OrderQuery{}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("orders of an unknown user: %v, want ErrNotFound", err)
	}
}

func TestProjection_UserAt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{Email: "w@example.com", Name: "W"}))

	t.Run("WaitsUntilApplied", func(t *testing.T) {
		polls := 0
		readmodel.SetPollHook(e.proj, func() {
			polls++
			if polls == 2 {
				e.mustApply(t, ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("Waited")}))
			}
		})
		defer readmodel.SetPollHook(e.proj, nil)
		u, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 1, For: 30 * time.Second})
		if err != nil || u.Version != 1 || u.Name != "Waited" {
			t.Fatalf("got %+v, %v; want version 1", u, err)
		}
		if polls != 2 {
			t.Errorf("%d polls, want 2", polls)
		}
	})
	t.Run("NotCaughtUp", func(t *testing.T) {
		start := time.Now()
		_, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 5, For: 30 * time.Millisecond})
		var nc *readmodel.NotCaughtUpError
		if !errors.As(err, &nc) || nc.Version != 1 || nc.MinVersion != 5 || nc.StreamID != s {
			t.Fatalf("got %v, want NotCaughtUpError at version 1", err)
		}
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("gave up after %s, before the wait was over", d)
		}
	})
	t.Run("NoWait", func(t *testing.T) {
		var nc *readmodel.NotCaughtUpError
		if _, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 2}); !errors.As(err, &nc) {
			t.Fatalf("got %v, want NotCaughtUpError at once", err)
		}
		if u, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: -1}); err != nil || u.Version != 1 {
			t.Fatalf("got %+v, %v", u, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		_, err := e.proj.OrderAt(ctx, newID(), readmodel.Wait{MinVersion: 0, For: 10 * time.Millisecond})
		if !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		readmodel.SetPollHook(e.proj, cancel)
		defer readmodel.SetPollHook(e.proj, nil)
		if _, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 9, For: time.Minute}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

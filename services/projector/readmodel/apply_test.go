package readmodel_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func userStream(id uuid.UUID) string  { return "user-" + id.String() }
func orderStream(id uuid.UUID) string { return "order-" + id.String() }

func strp(s string) *string { return &s }

func tp(t time.Time) *time.Time { return &t }

func TestApply_User(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "ada@example.com", Name: "Ada"}))
	got, err := e.proj.User(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := readmodel.User{ID: id, StreamID: s, Version: 0, Email: "ada@example.com", Name: "Ada",
		Status: domain.UserStatusActive, CreatedAt: at, UpdatedAt: at}
	if jsonOf(got) != jsonOf(want) {
		t.Errorf("after UserCreated:\n got %s\nwant %s", jsonOf(got), jsonOf(want))
	}

	e.mustApply(t,
		ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("Ada Lovelace")}),
		ev(s, 2, domain.EventUserProfileUpdated, `{"email":"ada@lovelace.example","name":null}`),
		ev(s, 3, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "moved away"}),
	)
	got, err = e.proj.User(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want = readmodel.User{ID: id, StreamID: s, Version: 3, Email: "ada@lovelace.example", Name: "Ada Lovelace",
		Status: domain.UserStatusDeactivated, DeactivationReason: "moved away",
		CreatedAt: at, UpdatedAt: at.Add(3 * time.Second), DeactivatedAt: tp(at.Add(3 * time.Second))}
	if jsonOf(got) != jsonOf(want) {
		t.Errorf("after the updates:\n got %s\nwant %s", jsonOf(got), jsonOf(want))
	}
}

func TestApply_Order(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	user := newID()
	tea := domain.Item{ID: "tea", Name: "Tea", PriceCents: 350, Quantity: 2}
	cake := domain.Item{ID: "cake", Name: "Cake", PriceCents: 425, Quantity: 1}
	jam := domain.Item{ID: "jam", Name: "Jam", PriceCents: 199, Quantity: 3}

	check := func(t *testing.T, id uuid.UUID, want readmodel.Order) {
		t.Helper()
		got, err := e.proj.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want.ID, want.StreamID, want.UserID, want.CreatedAt = id, orderStream(id), user, at
		if jsonOf(got) != jsonOf(want) {
			t.Errorf("\n got %s\nwant %s", jsonOf(got), jsonOf(want))
		}
	}

	t.Run("ItemsThenConfirmAndShip", func(t *testing.T) {
		id := newID()
		s := orderStream(id)
		e.mustApply(t, ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(),
			Items: []domain.Item{tea, cake}, TotalCents: 1125}))
		check(t, id, readmodel.Order{Status: domain.OrderStatusPending, Items: []domain.Item{tea, cake},
			TotalCents: 1125, ItemCount: 2, UpdatedAt: at})

		e.mustApply(t,
			ev(s, 1, domain.EventItemAdded, domain.ItemAdded{Item: jam}),
			ev(s, 2, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "tea"}),
		)
		check(t, id, readmodel.Order{Version: 2, Status: domain.OrderStatusPending, Items: []domain.Item{cake, jam},
			TotalCents: 425 + 597, ItemCount: 2, UpdatedAt: at.Add(2 * time.Second)})

		e.mustApply(t,
			ev(s, 3, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 1022}),
			ev(s, 4, domain.EventOrderShipped, `{}`),
		)
		check(t, id, readmodel.Order{Version: 4, Status: domain.OrderStatusShipped, Items: []domain.Item{cake, jam},
			TotalCents: 1022, ItemCount: 2, UpdatedAt: at.Add(4 * time.Second),
			ConfirmedAt: tp(at.Add(3 * time.Second)), ShippedAt: tp(at.Add(4 * time.Second))})
	})

	t.Run("Cancelled", func(t *testing.T) {
		id := newID()
		s := orderStream(id)
		e.mustApply(t,
			ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(), Items: nil, TotalCents: 0}),
			ev(s, 1, domain.EventOrderCancelled, domain.OrderCancelled{Reason: "too slow"}),
		)
		check(t, id, readmodel.Order{Version: 1, Status: domain.OrderStatusCancelled, Items: []domain.Item{},
			CancellationReason: "too slow", UpdatedAt: at.Add(time.Second), CancelledAt: tp(at.Add(time.Second))})
	})

	t.Run("RemoveTheFirstOfTwoLinesWithOneID", func(t *testing.T) {
		// The writer never records two lines with one id, but its aggregate would remove the
		// first; so does the read model.
		id := newID()
		s := orderStream(id)
		tea2 := domain.Item{ID: "tea", Name: "Green tea", PriceCents: 500, Quantity: 1}
		e.mustApply(t,
			ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: user.String(), Items: []domain.Item{tea}, TotalCents: 700}),
			ev(s, 1, domain.EventItemAdded, domain.ItemAdded{Item: tea2}),
			ev(s, 2, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "tea"}),
		)
		check(t, id, readmodel.Order{Version: 2, Status: domain.OrderStatusPending, Items: []domain.Item{tea2},
			TotalCents: 500, ItemCount: 1, UpdatedAt: at.Add(2 * time.Second)})
	})
}

func TestApply_Duplicate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	created := ev(s, 0, domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "a@example.com", Name: "A"})
	renamed := ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("B")})
	e.mustApply(t, created, renamed)
	before, err := e.proj.User(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The same events again, and a different event at an applied version: all skipped.
	other := ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("C")})
	other.RecordedAt = at.Add(time.Hour)
	for _, d := range []events.Envelope{created, renamed, other} {
		if err := e.apply(t, d); err != nil {
			t.Errorf("apply %s@%d again: %v, want nil (skipped)", d.Type, d.Version, err)
		}
	}
	after, err := e.proj.User(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(after) != jsonOf(before) {
		t.Errorf("duplicates changed the row:\n got %s\nwant %s", jsonOf(after), jsonOf(before))
	}
}

func TestApply_ErrGap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := newID()
	s := orderStream(id)
	created := ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: id.String(), UserID: newID().String(), TotalCents: 0})
	added := ev(s, 1, domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "a", Name: "A", PriceCents: 100, Quantity: 1}})
	confirmed := ev(s, 2, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 100})

	t.Run("NoRow", func(t *testing.T) {
		err := e.apply(t, added)
		if !errors.Is(err, readmodel.ErrGap) || consume.IsPermanent(err) {
			t.Fatalf("apply version 1 of a stream without a row: %v, want a retryable ErrGap", err)
		}
		if _, err := e.proj.Order(ctx, id); !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("the gap left a row: %v", err)
		}
	})
	t.Run("Ahead", func(t *testing.T) {
		e.mustApply(t, created)
		err := e.apply(t, confirmed)
		if !errors.Is(err, readmodel.ErrGap) || consume.IsPermanent(err) {
			t.Fatalf("apply version 2 on version 0: %v, want a retryable ErrGap", err)
		}
		if !strings.Contains(err.Error(), "version 0") {
			t.Errorf("error %q does not say where the read model is", err)
		}
		o, err := e.proj.Order(ctx, id)
		if err != nil || o.Version != 0 || o.Status != domain.OrderStatusPending {
			t.Fatalf("after the gap: %+v, %v; want version 0, pending", o, err)
		}
	})
	t.Run("ThenInOrder", func(t *testing.T) {
		e.mustApply(t, added, confirmed)
		o, err := e.proj.Order(ctx, id)
		if err != nil || o.Version != 2 || o.Status != domain.OrderStatusConfirmed || o.TotalCents != 100 {
			t.Fatalf("got %+v, %v; want version 2, confirmed, 100 cents", o, err)
		}
	})
}

func TestApply_Permanent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	user := newID()
	us := userStream(user)
	e.mustApply(t, ev(us, 0, domain.EventUserCreated, domain.UserCreated{UserID: user.String(), Email: "a@example.com", Name: "A"}))
	order := newID()
	os := orderStream(order)
	e.mustApply(t,
		ev(os, 0, domain.EventOrderCreated, domain.OrderCreated{OrderID: order.String(), UserID: user.String(),
			Items: []domain.Item{{ID: "a", Name: "A", PriceCents: math.MaxInt64 / 2, Quantity: 1}}, TotalCents: math.MaxInt64 / 2}),
	)
	userBefore, _ := e.proj.User(ctx, user)
	orderBefore, _ := e.proj.Order(ctx, order)

	for _, tc := range []struct {
		name string
		ev   events.Envelope
		want string // in the error
	}{
		{"MalformedJSON", ev(us, 1, domain.EventUserProfileUpdated, `{"name":`), "data"},
		{"WrongFieldType", ev(us, 1, domain.EventUserDeactivated, `{"reason":42}`), "data"},
		{"UnknownUserEvent", ev(us, 1, "UserPromoted", `{}`), "unknown event type"},
		{"UnknownOrderEvent", ev(os, 1, "OrderTeleported", `{}`), "unknown event type"},
		{"CreatedTwice", ev(us, 1, domain.EventUserCreated, domain.UserCreated{Email: "b@example.com", Name: "B"}), "version 0"},
		{"StartsWithoutCreation", ev(userStream(newID()), 0, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "x"}), "must start"},
		{"UserWithoutEmail", ev(userStream(newID()), 0, domain.EventUserCreated, `{"name":"N"}`), "email"},
		{"OtherUserID", ev(userStream(newID()), 0, domain.EventUserCreated, domain.UserCreated{UserID: user.String(), Email: "x@example.com", Name: "X"}), "stream's id"},
		{"NotAUUID", ev("user-42", 0, domain.EventUserCreated, domain.UserCreated{Email: "x@example.com", Name: "X"}), "UUID"},
		{"NULInName", ev(us, 1, domain.EventUserProfileUpdated, `{"name":"a\u0000b"}`), "NUL"},
		{"TotalMismatch", ev(orderStream(newID()), 0, domain.EventOrderCreated, domain.OrderCreated{UserID: user.String(),
			Items: []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 2}}, TotalCents: 100}), "total_cents"},
		{"NegativePrice", ev(os, 1, domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "b", Name: "B", PriceCents: -1, Quantity: 1}}), "negative"},
		{"TotalOverflows", ev(os, 1, domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "b", Name: "B", PriceCents: math.MaxInt64/2 + 10, Quantity: 1}}), "overflow"},
		{"RemoveMissingItem", ev(os, 1, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "nope"}), `no item "nope"`},
		{"ConfirmWrongTotal", ev(os, 1, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 1}), "total_cents 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.apply(t, tc.ev)
			if !consume.IsPermanent(err) {
				t.Fatalf("got %v, want a Permanent error", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.ev.StreamID) {
				t.Errorf("error %q does not name the stream and %q", err, tc.want)
			}
			// Nothing changed.
			if u, _ := e.proj.User(ctx, user); jsonOf(u) != jsonOf(userBefore) {
				t.Errorf("the user changed: %s", jsonOf(u))
			}
			if o, _ := e.proj.Order(ctx, order); jsonOf(o) != jsonOf(orderBefore) {
				t.Errorf("the order changed: %s", jsonOf(o))
			}
		})
	}
}

func TestApply_OtherCategory(t *testing.T) {
	e := newEnv(t)
	if err := e.apply(t, ev("payment-"+newID().String(), 3, "PaymentTaken", `not even JSON`)); err != nil {
		t.Fatalf("an event of a category without read model: %v, want nil", err)
	}
}

func TestProjection_Handle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	h := consume.Chain(e.proj, consume.Inbox{Group: readmodel.Group}.Middleware())
	unit := consume.PostgresUnit(e.pool)
	deliver := func(ev events.Envelope) error {
		return unit(ctx, func(ctx context.Context) error {
			return h.Handle(ctx, &consume.Message{Topic: "annals.user", Key: []byte(ev.StreamID), Event: ev, Attempt: 1})
		})
	}

	t.Run("OK", func(t *testing.T) {
		created := ev(s, 0, domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "h@example.com", Name: "H"})
		if err := deliver(created); err != nil {
			t.Fatal(err)
		}
		if err := deliver(created); err != nil {
			t.Fatalf("redelivery: %v", err)
		}
		if got := version(t, e.proj, s); got != 0 {
			t.Errorf("version %d, want 0", got)
		}
	})
	t.Run("ErrGapRollsBackTheInbox", func(t *testing.T) {
		deactivated := ev(s, 2, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "r"})
		if err := deliver(deactivated); !errors.Is(err, readmodel.ErrGap) {
			t.Fatalf("got %v, want ErrGap", err)
		}
		// The inbox claim rolled back with the refused event, so it applies once its
		// predecessor has.
		if err := deliver(ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("I")})); err != nil {
			t.Fatal(err)
		}
		if err := deliver(deactivated); err != nil {
			t.Fatal(err)
		}
		u, err := e.proj.User(ctx, id)
		if err != nil || u.Version != 2 || u.Status != domain.UserStatusDeactivated || u.Name != "I" {
			t.Fatalf("got %+v, %v", u, err)
		}
	})
	t.Run("OutsideAUnit", func(t *testing.T) {
		err := e.proj.Handle(ctx, &consume.Message{Event: ev(s, 3, domain.EventUserDeactivated, `{}`)})
		if !consume.IsPermanent(err) {
			t.Fatalf("got %v, want a Permanent error", err)
		}
	})
}

// TestApply_MatchesTheWriter runs random commands of the writer's domain, applies their events
// and compares every row with the aggregate the writer loads from the same events.
func TestApply_MatchesTheWriter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := newWorkload(e, 1)
	for _, ev := range w.run(t, 400) {
		e.mustApply(t, ev)
	}
	for _, id := range w.users {
		a, _, err := e.users.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		u, err := e.proj.User(ctx, uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		s := a.State()
		if u.Version != a.Version() || u.Email != s.Email || u.Name != s.Name || u.Status != s.Status || u.DeactivationReason != s.DeactivationReason {
			t.Errorf("user %s: read model %+v, writer %+v at version %d", id, u, s, a.Version())
		}
	}
	for _, id := range w.orders {
		a, _, err := e.orders.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		o, err := e.proj.Order(ctx, uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		s := a.State()
		if s.Items == nil {
			s.Items = []domain.Item{}
		}
		if o.Version != a.Version() || o.UserID.String() != s.UserID || o.Status != s.Status || o.TotalCents != s.TotalCents ||
			o.ItemCount != len(s.Items) || jsonOf(o.Items) != jsonOf(s.Items) || o.CancellationReason != s.CancellationReason {
			t.Errorf("order %s: read model %s, writer %s at version %d", id, jsonOf(o), jsonOf(s), a.Version())
		}
	}
	if len(w.orders) < 20 || len(w.users) < 20 {
		t.Fatalf("the workload made only %d users and %d orders", len(w.users), len(w.orders))
	}
}

package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

var (
	users  = &events.Repository[domain.UserState]{Def: domain.User}
	orders = &events.Repository[domain.OrderState]{Def: domain.Order}
)

const (
	userID  = "0190a4b2-7f3c-7a00-8000-000000000001"
	orderID = "0190a4b2-7f3c-7a00-8000-000000000002"
)

func wantRule(tb testing.TB, err error, rule string) {
	tb.Helper()
	var re *domain.RuleError
	if !errors.As(err, &re) {
		tb.Fatalf("error = %v, want rule %s", err, rule)
	}
	if got := re.Rule; got != rule {
		tb.Fatalf("rule = %s (%s), want %s", got, re.Message, rule)
	}
}

func wantInvalid(tb testing.TB, err error, field string) {
	tb.Helper()
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("error = %v, want a validation error on %q", err, field)
	}
	if got := ve.Field; got != field {
		tb.Fatalf("field = %q (%s), want %q", got, ve.Message, field)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// replay rebuilds a state from an aggregate's recorded events, as a load from the store would,
// and checks that it equals the in-memory state and survives a snapshot's JSON round trip.
func replay[S any](tb testing.TB, def events.Definition[S], a *events.Aggregate[S]) {
	tb.Helper()
	var s S
	for i, e := range a.Pending() {
		env := events.Envelope{StreamID: a.StreamID(), Version: int64(i), Type: e.Type, Data: e.Data}
		must(tb, def.Apply(&s, env))
	}
	if got, want := s, a.State(); !reflect.DeepEqual(got, want) {
		tb.Fatalf("replayed state = %+v, want %+v", got, want)
	}
	b, err := json.Marshal(s)
	must(tb, err)
	var back S
	must(tb, json.Unmarshal(b, &back))
	if !reflect.DeepEqual(back, s) {
		tb.Fatalf("snapshot round trip = %+v, want %+v", back, s)
	}
}

// unchanged runs a failing command and checks that it recorded nothing.
func unchanged[S any](tb testing.TB, a *events.Aggregate[S], cmd func() error) error {
	tb.Helper()
	before, n := a.State(), len(a.Pending())
	err := cmd()
	if err == nil {
		tb.Fatal("command succeeded, want an error")
	}
	if len(a.Pending()) != n || !reflect.DeepEqual(a.State(), before) {
		tb.Fatalf("failed command changed the aggregate: %+v", a.State())
	}
	return err
}

func newUser(tb testing.TB) *events.Aggregate[domain.UserState] {
	tb.Helper()
	u := users.New(userID)
	must(tb, domain.CreateUser(u, "ada@example.com", "  Ada Lovelace "))
	return u
}

func TestCreateUser(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		u := newUser(t)
		want := domain.UserState{ID: userID, Email: "ada@example.com", Name: "Ada Lovelace", Status: domain.UserStatusActive}
		if got := u.State(); got != want {
			t.Errorf("state = %+v, want %+v", got, want)
		}
		if got := u.Pending()[0].Type; got != domain.EventUserCreated {
			t.Errorf("event = %s", got)
		}
		var d map[string]any
		must(t, json.Unmarshal(u.Pending()[0].Data, &d))
		if d["user_id"] != userID || d["email"] != "ada@example.com" || d["name"] != "Ada Lovelace" {
			t.Errorf("data = %v", d)
		}
		replay(t, domain.User, u)
	})
	t.Run("AlreadyExists", func(t *testing.T) {
		u := newUser(t)
		wantRule(t, unchanged(t, u, func() error { return domain.CreateUser(u, "b@example.com", "B") }), domain.RuleUserAlreadyExists)
	})
	t.Run("InvalidEmail", func(t *testing.T) {
		u := users.New(userID)
		wantInvalid(t, unchanged(t, u, func() error { return domain.CreateUser(u, "not an email", "B") }), "email")
	})
	t.Run("EmptyName", func(t *testing.T) {
		u := users.New(userID)
		wantInvalid(t, unchanged(t, u, func() error { return domain.CreateUser(u, "b@example.com", " \t ") }), "name")
	})
}

func TestUpdateUserProfile(t *testing.T) {
	name, email := " Ada King ", "ada@king.example"
	t.Run("OK", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.UpdateUserProfile(u, domain.ProfileUpdate{Name: &name}))
		must(t, domain.UpdateUserProfile(u, domain.ProfileUpdate{Email: &email}))
		if got := u.State(); got.Name != "Ada King" || got.Email != email {
			t.Errorf("state = %+v", got)
		}
		if got := string(u.Pending()[1].Data); got != `{"name":"Ada King"}` {
			t.Errorf("data = %s, want only the changed field", got)
		}
		replay(t, domain.User, u)
	})
	t.Run("UserNotFound", func(t *testing.T) {
		u := users.New(userID)
		wantRule(t, unchanged(t, u, func() error { return domain.UpdateUserProfile(u, domain.ProfileUpdate{Name: &name}) }), domain.RuleUserNotFound)
	})
	t.Run("NothingToUpdate", func(t *testing.T) {
		u := newUser(t)
		wantInvalid(t, unchanged(t, u, func() error { return domain.UpdateUserProfile(u, domain.ProfileUpdate{}) }), "")
	})
	t.Run("InvalidEmail", func(t *testing.T) {
		u := newUser(t)
		bad := "Ada <ada@example.com>"
		wantInvalid(t, unchanged(t, u, func() error { return domain.UpdateUserProfile(u, domain.ProfileUpdate{Email: &bad}) }), "email")
	})
	t.Run("DeactivatedUserMayUpdate", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.DeactivateUser(u, "left"))
		must(t, domain.UpdateUserProfile(u, domain.ProfileUpdate{Name: &name}))
	})
}

func TestDeactivateUser(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.DeactivateUser(u, " requested by the user "))
		if got := u.State(); got.Status != domain.UserStatusDeactivated || got.DeactivationReason != "requested by the user" || got.Active() {
			t.Errorf("state = %+v", got)
		}
		replay(t, domain.User, u)
	})
	t.Run("UserNotFound", func(t *testing.T) {
		u := users.New(userID)
		wantRule(t, unchanged(t, u, func() error { return domain.DeactivateUser(u, "x") }), domain.RuleUserNotFound)
	})
	t.Run("AlreadyDeactivated", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.DeactivateUser(u, "x"))
		wantRule(t, unchanged(t, u, func() error { return domain.DeactivateUser(u, "y") }), domain.RuleUserAlreadyDeactivated)
	})
	t.Run("EmptyReason", func(t *testing.T) {
		u := newUser(t)
		wantInvalid(t, unchanged(t, u, func() error { return domain.DeactivateUser(u, "") }), "reason")
	})
}

func items(n int) []domain.Item {
	out := make([]domain.Item, n)
	for i := range out {
		out[i] = domain.Item{ID: "sku-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "-" + itoa(i), Name: "Thing", PriceCents: 250, Quantity: 2}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func newOrder(tb testing.TB, its ...domain.Item) *events.Aggregate[domain.OrderState] {
	tb.Helper()
	o := orders.New(orderID)
	must(tb, domain.CreateOrder(o, newUser(tb), its))
	return o
}

var (
	book = domain.Item{ID: "book", Name: "A book", PriceCents: 1999, Quantity: 2}
	pen  = domain.Item{ID: "pen", Name: "A pen", PriceCents: 150, Quantity: 10}
)

func TestCreateOrder(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o := newOrder(t, book, pen)
		s := o.State()
		if s.ID != orderID || s.UserID != userID || s.Status != domain.OrderStatusPending || s.TotalCents != 2*1999+10*150 || len(s.Items) != 2 {
			t.Errorf("state = %+v", s)
		}
		var d domain.OrderCreated
		must(t, json.Unmarshal(o.Pending()[0].Data, &d))
		if d.OrderID != orderID || d.UserID != userID || d.TotalCents != s.TotalCents || len(d.Items) != 2 {
			t.Errorf("OrderCreated = %+v", d)
		}
		replay(t, domain.Order, o)
	})
	t.Run("NoItems", func(t *testing.T) {
		o := newOrder(t)
		if got := o.State(); got.Items == nil || len(got.Items) != 0 || got.TotalCents != 0 {
			t.Errorf("state = %+v, want an empty, non-nil item list", got)
		}
		replay(t, domain.Order, o)
	})
	t.Run("AlreadyExists", func(t *testing.T) {
		o := newOrder(t, book)
		wantRule(t, unchanged(t, o, func() error { return domain.CreateOrder(o, newUser(t), nil) }), domain.RuleOrderAlreadyExists)
	})
	t.Run("UserNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.CreateOrder(o, users.New(userID), nil) }), domain.RuleUserNotFound)
		wantRule(t, unchanged(t, o, func() error { return domain.CreateOrder(o, nil, nil) }), domain.RuleUserNotFound)
	})
	t.Run("UserDeactivated", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.DeactivateUser(u, "gone"))
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.CreateOrder(o, u, []domain.Item{book}) }), domain.RuleUserDeactivated)
	})
	for _, tc := range []struct {
		name  string
		items []domain.Item
		field string
	}{
		{"DuplicateItemID", []domain.Item{book, pen, book}, "items[2].id"},
		{"NegativePrice", []domain.Item{book, {ID: "x", Name: "x", PriceCents: -1, Quantity: 1}}, "items[1].price_cents"},
		{"PriceTooHigh", []domain.Item{{ID: "x", Name: "x", PriceCents: domain.MaxPriceCents + 1, Quantity: 1}}, "items[0].price_cents"},
		{"ZeroQuantity", []domain.Item{{ID: "x", Name: "x", PriceCents: 1, Quantity: 0}}, "items[0].quantity"},
		{"QuantityTooHigh", []domain.Item{{ID: "x", Name: "x", PriceCents: 1, Quantity: domain.MaxQuantity + 1}}, "items[0].quantity"},
		{"EmptyName", []domain.Item{{ID: "x", Name: " ", PriceCents: 1, Quantity: 1}}, "items[0].name"},
		{"EmptyID", []domain.Item{{ID: "", Name: "x", PriceCents: 1, Quantity: 1}}, "items[0].id"},
		{"LongID", []domain.Item{{ID: strings.Repeat("i", 101), Name: "x", PriceCents: 1, Quantity: 1}}, "items[0].id"},
		{"TooManyItems", items(domain.MaxItems + 1), "items"},
		{"TotalOverflows", func() []domain.Item {
			its := items(10)
			for i := range its {
				its[i].PriceCents, its[i].Quantity = domain.MaxPriceCents, domain.MaxQuantity
			}
			return its
		}(), "items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := orders.New(orderID)
			u := newUser(t)
			wantInvalid(t, unchanged(t, o, func() error { return domain.CreateOrder(o, u, tc.items) }), tc.field)
		})
	}
	t.Run("MaxItems", func(t *testing.T) {
		o := newOrder(t, items(domain.MaxItems)...)
		if got := len(o.State().Items); got != domain.MaxItems {
			t.Errorf("items = %d", got)
		}
	})
}

// inStatus returns an order with one item in the given status.
func inStatus(tb testing.TB, st domain.OrderStatus) *events.Aggregate[domain.OrderState] {
	tb.Helper()
	o := newOrder(tb, book)
	switch st {
	case domain.OrderStatusConfirmed:
		must(tb, domain.ConfirmOrder(o))
	case domain.OrderStatusCancelled:
		must(tb, domain.CancelOrder(o, "changed my mind"))
	case domain.OrderStatusShipped:
		must(tb, domain.ConfirmOrder(o))
		must(tb, domain.ShipOrder(o))
	}
	if got := o.State().Status; got != st {
		tb.Fatalf("status = %s, want %s", got, st)
	}
	return o
}

var notPending = []domain.OrderStatus{domain.OrderStatusConfirmed, domain.OrderStatusCancelled, domain.OrderStatusShipped}

func TestAddItem(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o := newOrder(t, book)
		must(t, domain.AddItem(o, pen))
		if got := o.State(); len(got.Items) != 2 || got.TotalCents != 2*1999+10*150 {
			t.Errorf("state = %+v", got)
		}
		replay(t, domain.Order, o)
	})
	for _, st := range notPending {
		t.Run("NotModifiable/"+string(st), func(t *testing.T) {
			o := inStatus(t, st)
			wantRule(t, unchanged(t, o, func() error { return domain.AddItem(o, pen) }), domain.RuleOrderNotModifiable)
		})
	}
	t.Run("OrderNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.AddItem(o, pen) }), domain.RuleOrderNotFound)
	})
	t.Run("DuplicateID", func(t *testing.T) {
		o := newOrder(t, book)
		wantRule(t, unchanged(t, o, func() error { return domain.AddItem(o, book) }), domain.RuleItemAlreadyInOrder)
	})
	t.Run("InvalidItem", func(t *testing.T) {
		o := newOrder(t, book)
		wantInvalid(t, unchanged(t, o, func() error { return domain.AddItem(o, domain.Item{ID: "x", Name: "x", PriceCents: -5, Quantity: 1}) }), "price_cents")
	})
	t.Run("TooManyItems", func(t *testing.T) {
		o := newOrder(t, items(domain.MaxItems)...)
		wantRule(t, unchanged(t, o, func() error { return domain.AddItem(o, pen) }), domain.RuleTooManyItems)
	})
	t.Run("TotalOverflow", func(t *testing.T) {
		big := func(id string) domain.Item {
			return domain.Item{ID: id, Name: "gold", PriceCents: domain.MaxPriceCents, Quantity: domain.MaxQuantity}
		}
		o := newOrder(t)
		n := 0
		for ; n < 100; n++ {
			it := big(itoa(n))
			if line, _ := it.LineTotal(); o.State().TotalCents > math.MaxInt64-line {
				break
			}
			must(t, domain.AddItem(o, it))
		}
		wantRule(t, unchanged(t, o, func() error { return domain.AddItem(o, big("last")) }), domain.RuleTotalOverflow)
	})
}

func TestRemoveItem(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o := newOrder(t, book, pen)
		before := o.State().Items
		must(t, domain.RemoveItem(o, "book"))
		if got := o.State(); len(got.Items) != 1 || got.Items[0].ID != "pen" || got.TotalCents != 1500 {
			t.Errorf("state = %+v", got)
		}
		if before[0].ID != "book" {
			t.Errorf("removing changed the previous state's items: %+v", before)
		}
		replay(t, domain.Order, o)
	})
	t.Run("Unknown", func(t *testing.T) {
		o := newOrder(t, book)
		wantRule(t, unchanged(t, o, func() error { return domain.RemoveItem(o, "nope") }), domain.RuleItemNotInOrder)
	})
	for _, st := range notPending {
		t.Run("NotModifiable/"+string(st), func(t *testing.T) {
			o := inStatus(t, st)
			wantRule(t, unchanged(t, o, func() error { return domain.RemoveItem(o, "book") }), domain.RuleOrderNotModifiable)
		})
	}
	t.Run("OrderNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.RemoveItem(o, "book") }), domain.RuleOrderNotFound)
	})
}

func TestConfirmOrder(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o := inStatus(t, domain.OrderStatusConfirmed)
		var d domain.OrderConfirmed
		must(t, json.Unmarshal(o.Pending()[1].Data, &d))
		if d.TotalCents != 2*1999 {
			t.Errorf("OrderConfirmed = %+v", d)
		}
		replay(t, domain.Order, o)
	})
	for _, tc := range []struct {
		status domain.OrderStatus
		rule   string
	}{
		{domain.OrderStatusConfirmed, domain.RuleOrderAlreadyConfirmed},
		{domain.OrderStatusShipped, domain.RuleOrderAlreadyConfirmed},
		{domain.OrderStatusCancelled, domain.RuleOrderCancelled},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			o := inStatus(t, tc.status)
			wantRule(t, unchanged(t, o, func() error { return domain.ConfirmOrder(o) }), tc.rule)
		})
	}
	t.Run("NoItems", func(t *testing.T) {
		o := newOrder(t, book)
		must(t, domain.RemoveItem(o, "book"))
		wantRule(t, unchanged(t, o, func() error { return domain.ConfirmOrder(o) }), domain.RuleOrderHasNoItems)
	})
	t.Run("OrderNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.ConfirmOrder(o) }), domain.RuleOrderNotFound)
	})
}

func TestCancelOrder(t *testing.T) {
	for _, st := range []domain.OrderStatus{domain.OrderStatusPending, domain.OrderStatusConfirmed} {
		t.Run("OK/"+string(st), func(t *testing.T) {
			o := inStatus(t, st)
			must(t, domain.CancelOrder(o, " out of stock "))
			if got := o.State(); got.Status != domain.OrderStatusCancelled || got.CancellationReason != "out of stock" {
				t.Errorf("state = %+v", got)
			}
			replay(t, domain.Order, o)
		})
	}
	for _, tc := range []struct {
		status domain.OrderStatus
		rule   string
	}{
		{domain.OrderStatusCancelled, domain.RuleOrderAlreadyCancelled},
		{domain.OrderStatusShipped, domain.RuleOrderAlreadyShipped},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			o := inStatus(t, tc.status)
			wantRule(t, unchanged(t, o, func() error { return domain.CancelOrder(o, "x") }), tc.rule)
		})
	}
	t.Run("EmptyReason", func(t *testing.T) {
		o := inStatus(t, domain.OrderStatusPending)
		wantInvalid(t, unchanged(t, o, func() error { return domain.CancelOrder(o, "  ") }), "reason")
	})
	t.Run("OrderNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.CancelOrder(o, "x") }), domain.RuleOrderNotFound)
	})
}

func TestShipOrder(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o := inStatus(t, domain.OrderStatusShipped)
		if got := string(o.Pending()[2].Data); got != `{}` {
			t.Errorf("OrderShipped data = %s", got)
		}
		replay(t, domain.Order, o)
	})
	for _, tc := range []struct {
		status domain.OrderStatus
		rule   string
	}{
		{domain.OrderStatusPending, domain.RuleOrderNotConfirmed},
		{domain.OrderStatusCancelled, domain.RuleOrderCancelled},
		{domain.OrderStatusShipped, domain.RuleOrderAlreadyShipped},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			o := inStatus(t, tc.status)
			wantRule(t, unchanged(t, o, func() error { return domain.ShipOrder(o) }), tc.rule)
		})
	}
	t.Run("OrderNotFound", func(t *testing.T) {
		o := orders.New(orderID)
		wantRule(t, unchanged(t, o, func() error { return domain.ShipOrder(o) }), domain.RuleOrderNotFound)
	})
}

func TestApply_Rejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"UnknownUserEvent", func() error {
			var s domain.UserState
			return domain.User.Apply(&s, events.Envelope{Type: "UserExploded", Data: []byte(`{}`)})
		}()},
		{"UnknownOrderEvent", func() error {
			var s domain.OrderState
			return domain.Order.Apply(&s, events.Envelope{Type: "OrderLost", Data: []byte(`{}`)})
		}()},
		{"BadData", func() error {
			var s domain.UserState
			return domain.User.Apply(&s, events.Envelope{Type: domain.EventUserCreated, Data: []byte(`{"email":1}`)})
		}()},
		{"WrongTotal", func() error {
			var s domain.OrderState
			return domain.Order.Apply(&s, events.Envelope{Type: domain.EventOrderCreated,
				Data: []byte(`{"order_id":"o","user_id":"u","items":[{"id":"a","name":"a","price_cents":5,"quantity":2}],"total_cents":11}`)})
		}()},
		{"RemoveUnknownItem", func() error {
			s := domain.OrderState{Items: []domain.Item{book}}
			return domain.Order.Apply(&s, events.Envelope{Type: domain.EventItemRemoved, Data: []byte(`{"item_id":"pen"}`)})
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Error("Apply accepted it")
			}
		})
	}
}

func TestValidateEmail(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"ada@example.com", true},
		{"a.b+tag@sub.example.org", true},
		{"", false},
		{"ada", false},
		{"ada@", false},
		{"@example.com", false},
		{"Ada <ada@example.com>", false},
		{"<ada@example.com>", false},
		{" ada@example.com", false},
		{"ada@example.com ", false},
		{"a@b@c", false},
		{"ada@exa\x00mple.com", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", true},  // 254 bytes
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", false}, // 255 bytes
	} {
		t.Run(tc.in, func(t *testing.T) {
			err := domain.ValidateEmail("email", tc.in)
			if got := err == nil; got != tc.ok {
				t.Errorf("ValidateEmail(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Ada", "Ada", true},
		{"  Ada  ", "Ada", true},
		{"Zoë Ω", "Zoë Ω", true},
		{strings.Repeat("é", 200), strings.Repeat("é", 200), true},
		{strings.Repeat("é", 201), "", false},
		{"", "", false},
		{" \n\t", "", false},
		{"A\x00da", "", false},
		{"A\u0085da", "", false},
		{"\xff", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := domain.NormalizeName("name", tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("NormalizeName(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestValidationError_In(t *testing.T) {
	e := &domain.ValidationError{Field: "price_cents", Message: "bad"}
	if got := e.In("items[3]").Field; got != "items[3].price_cents" {
		t.Errorf("field = %q", got)
	}
	if got := (&domain.ValidationError{Message: "bad"}).In("item").Field; got != "item" {
		t.Errorf("field = %q", got)
	}
}

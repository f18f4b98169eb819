package api_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAPI_Users(t *testing.T) {
	e := newEnv(t)
	var id string

	t.Run("Create", func(t *testing.T) {
		var res response
		e.appended(t, 1, func() {
			res = e.do(t, "POST", "/v1/users", map[string]any{"email": "ada@example.com", "name": "  Ada Lovelace "})
		})
		m := res.ok(t, http.StatusCreated)
		id, _ = m["id"].(string)
		if !uuidV7.MatchString(id) {
			t.Errorf("id = %q, want a UUIDv7", id)
		}
		if m["stream_id"] != "user-"+id || m["version"] != 0.0 || m["position"].(float64) < 1 || len(m) != 4 {
			t.Errorf("body = %v", m)
		}
		if got := res.Header.Get("ETag"); got != `"0"` {
			t.Errorf("ETag = %q", got)
		}
		if got := res.Header.Get("X-Command-ID"); !uuidV7.MatchString(got) {
			t.Errorf("X-Command-ID = %q", got)
		}
	})
	t.Run("CreateWithID", func(t *testing.T) {
		want := uuid.New().String()
		m := e.do(t, "POST", "/v1/users", map[string]any{"id": strings.ToUpper(want), "email": "b@example.com", "name": "B"}).ok(t, http.StatusCreated)
		if m["id"] != want {
			t.Errorf("id = %v, want %s (lower case)", m["id"], want)
		}
	})
	t.Run("Get", func(t *testing.T) {
		res := e.do(t, "GET", "/v1/users/"+id, nil)
		m := res.ok(t, http.StatusOK)
		want := map[string]any{"id": id, "stream_id": "user-" + id, "version": 0.0, "email": "ada@example.com", "name": "Ada Lovelace", "status": "active"}
		if !equalJSON(m, want) {
			t.Errorf("user = %v, want %v", m, want)
		}
		if got := res.Header.Get("ETag"); got != `"0"` {
			t.Errorf("ETag = %q", got)
		}
	})
	t.Run("Update", func(t *testing.T) {
		res := e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "Ada King"})
		if m := res.ok(t, http.StatusOK); m["version"] != 1.0 || m["id"] != id {
			t.Errorf("body = %v", m)
		}
		if got := res.Header.Get("ETag"); got != `"1"` {
			t.Errorf("ETag = %q", got)
		}
		e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"email": "ada@king.example"}, "Content-Type", "application/json; charset=UTF-8").ok(t, http.StatusOK)
		m := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK)
		if m["name"] != "Ada King" || m["email"] != "ada@king.example" || m["version"] != 2.0 {
			t.Errorf("user = %v", m)
		}
		// The profile update is recorded in the data shape of its current schema.
		evs := e.streamEvents(t, "user-"+id, "").Events
		if len(evs) != 3 || evs[0].SchemaVersion != 1 || evs[1].SchemaVersion != 2 || evs[2].SchemaVersion != 2 {
			t.Errorf("schema versions = %+v", evs)
		}
	})
	t.Run("Deactivate", func(t *testing.T) {
		e.do(t, "POST", "/v1/users/"+id+"/deactivate", map[string]any{"reason": "asked to leave"}).ok(t, http.StatusOK)
		m := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK)
		if m["status"] != "deactivated" || m["deactivation_reason"] != "asked to leave" || m["version"] != 3.0 {
			t.Errorf("user = %v", m)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		missing := uuid.New().String()
		e.unchanged(t, func() {
			e.do(t, "GET", "/v1/users/"+missing, nil).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "PATCH", "/v1/users/"+missing, map[string]any{"name": "x"}).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "POST", "/v1/users/"+missing+"/deactivate", map[string]any{"reason": "x"}).fail(t, http.StatusNotFound, "not_found")
		})
	})
}

func TestAPI_Orders(t *testing.T) {
	e := newEnv(t)
	userID := e.createUser(t)
	var id string

	t.Run("Create", func(t *testing.T) {
		var res response
		e.appended(t, 1, func() {
			res = e.do(t, "POST", "/v1/orders", map[string]any{"user_id": userID, "items": []item{book}})
		})
		m := res.ok(t, http.StatusCreated)
		id, _ = m["id"].(string)
		if !uuidV7.MatchString(id) || m["stream_id"] != "order-"+id || m["version"] != 0.0 {
			t.Errorf("body = %v", m)
		}
	})
	t.Run("AddItem", func(t *testing.T) {
		m := e.do(t, "POST", "/v1/orders/"+id+"/items", pen).ok(t, http.StatusOK)
		if m["version"] != 1.0 {
			t.Errorf("body = %v", m)
		}
	})
	t.Run("RemoveItem", func(t *testing.T) {
		e.do(t, "POST", "/v1/orders/"+id+"/items", item{ID: "gift/wrap ü", Name: "Wrapping", PriceCents: 0, Quantity: 1}).ok(t, http.StatusOK)
		m := e.do(t, "DELETE", "/v1/orders/"+id+"/items/gift%2Fwrap%20%C3%BC", nil).ok(t, http.StatusOK)
		if m["version"] != 3.0 {
			t.Errorf("body = %v", m)
		}
	})
	t.Run("Get", func(t *testing.T) {
		res := e.do(t, "GET", "/v1/orders/"+id, nil)
		m := res.ok(t, http.StatusOK)
		want := map[string]any{"id": id, "stream_id": "order-" + id, "version": 3.0, "user_id": userID, "status": "pending",
			"items": []any{
				map[string]any{"id": "book", "name": "A book", "price_cents": 1999.0, "quantity": 2.0},
				map[string]any{"id": "pen", "name": "A pen", "price_cents": 150.0, "quantity": 10.0},
			},
			"total_cents": 2*1999.0 + 1500}
		if !equalJSON(m, want) {
			t.Errorf("order = %v, want %v", m, want)
		}
		if got := res.Header.Get("ETag"); got != `"3"` {
			t.Errorf("ETag = %q", got)
		}
	})
	t.Run("ConfirmAndShip", func(t *testing.T) {
		e.do(t, "POST", "/v1/orders/"+id+"/confirm", nil).ok(t, http.StatusOK)
		e.do(t, "POST", "/v1/orders/"+id+"/ship", raw("{}")).ok(t, http.StatusOK)
		if m := e.do(t, "GET", "/v1/orders/"+id, nil).ok(t, http.StatusOK); m["status"] != "shipped" || m["version"] != 5.0 {
			t.Errorf("order = %v", m)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		other := e.createOrder(t, book)
		e.do(t, "POST", "/v1/orders/"+other+"/cancel", map[string]any{"reason": "changed my mind"}).ok(t, http.StatusOK)
		if m := e.do(t, "GET", "/v1/orders/"+other, nil).ok(t, http.StatusOK); m["status"] != "cancelled" || m["cancellation_reason"] != "changed my mind" {
			t.Errorf("order = %v", m)
		}
	})
	t.Run("CreateWithoutItems", func(t *testing.T) {
		m := e.do(t, "POST", "/v1/orders", map[string]any{"user_id": userID}).ok(t, http.StatusCreated)
		o := e.do(t, "GET", "/v1/orders/"+m["id"].(string), nil).ok(t, http.StatusOK)
		if items, ok := o["items"].([]any); !ok || len(items) != 0 || o["total_cents"] != 0.0 {
			t.Errorf("order = %v", o)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		missing := uuid.New().String()
		e.unchanged(t, func() {
			e.do(t, "GET", "/v1/orders/"+missing, nil).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "POST", "/v1/orders/"+missing+"/items", pen).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "DELETE", "/v1/orders/"+missing+"/items/pen", nil).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "POST", "/v1/orders/"+missing+"/confirm", nil).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "POST", "/v1/orders/"+missing+"/cancel", map[string]any{"reason": "x"}).fail(t, http.StatusNotFound, "not_found")
			e.do(t, "POST", "/v1/orders/"+missing+"/ship", nil).fail(t, http.StatusNotFound, "not_found")
		})
	})
}

// equalJSON compares decoded JSON values.
func equalJSON(got, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return false
		}
		switch w := w.(type) {
		case map[string]any:
			gm, ok := g.(map[string]any)
			if !ok || !equalJSON(gm, w) {
				return false
			}
		case []any:
			gs, ok := g.([]any)
			if !ok || len(gs) != len(w) {
				return false
			}
			for i := range w {
				if !equalJSON(map[string]any{"v": gs[i]}, map[string]any{"v": w[i]}) {
					return false
				}
			}
		default:
			if g != w {
				return false
			}
		}
	}
	return true
}

func TestAPI_Rules(t *testing.T) {
	e := newEnv(t)
	orderIn := func(t *testing.T, status domain.OrderStatus) string {
		t.Helper()
		id := e.createOrder(t, book)
		switch status {
		case domain.OrderStatusConfirmed:
			e.do(t, "POST", "/v1/orders/"+id+"/confirm", nil).ok(t, http.StatusOK)
		case domain.OrderStatusShipped:
			e.do(t, "POST", "/v1/orders/"+id+"/confirm", nil).ok(t, http.StatusOK)
			e.do(t, "POST", "/v1/orders/"+id+"/ship", nil).ok(t, http.StatusOK)
		case domain.OrderStatusCancelled:
			e.do(t, "POST", "/v1/orders/"+id+"/cancel", map[string]any{"reason": "x"}).ok(t, http.StatusOK)
		}
		return id
	}
	deactivated := func(t *testing.T) string {
		t.Helper()
		id := e.createUser(t)
		e.do(t, "POST", "/v1/users/"+id+"/deactivate", map[string]any{"reason": "x"}).ok(t, http.StatusOK)
		return id
	}

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (method, path string, body any)
		rule  string
	}{
		{"UserAlreadyExists", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/users", map[string]any{"id": e.createUser(t), "email": "c@example.com", "name": "C"}
		}, domain.RuleUserAlreadyExists},
		{"UserAlreadyDeactivated", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/users/" + deactivated(t) + "/deactivate", map[string]any{"reason": "again"}
		}, domain.RuleUserAlreadyDeactivated},
		{"OrderForMissingUser", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders", map[string]any{"user_id": uuid.New().String(), "items": []item{book}}
		}, domain.RuleUserNotFound},
		{"OrderForDeactivatedUser", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders", map[string]any{"user_id": deactivated(t), "items": []item{book}}
		}, domain.RuleUserDeactivated},
		{"OrderAlreadyExists", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders", map[string]any{"id": e.createOrder(t), "user_id": e.createUser(t)}
		}, domain.RuleOrderAlreadyExists},
		{"AddToConfirmed", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusConfirmed) + "/items", pen
		}, domain.RuleOrderNotModifiable},
		{"AddToCancelled", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusCancelled) + "/items", pen
		}, domain.RuleOrderNotModifiable},
		{"AddToShipped", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusShipped) + "/items", pen
		}, domain.RuleOrderNotModifiable},
		{"RemoveFromConfirmed", func(t *testing.T) (string, string, any) {
			return "DELETE", "/v1/orders/" + orderIn(t, domain.OrderStatusConfirmed) + "/items/book", nil
		}, domain.RuleOrderNotModifiable},
		{"RemoveFromCancelled", func(t *testing.T) (string, string, any) {
			return "DELETE", "/v1/orders/" + orderIn(t, domain.OrderStatusCancelled) + "/items/book", nil
		}, domain.RuleOrderNotModifiable},
		{"RemoveFromShipped", func(t *testing.T) (string, string, any) {
			return "DELETE", "/v1/orders/" + orderIn(t, domain.OrderStatusShipped) + "/items/book", nil
		}, domain.RuleOrderNotModifiable},
		{"AddDuplicateItem", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusPending) + "/items", book
		}, domain.RuleItemAlreadyInOrder},
		{"RemoveUnknownItem", func(t *testing.T) (string, string, any) {
			return "DELETE", "/v1/orders/" + orderIn(t, domain.OrderStatusPending) + "/items/nope", nil
		}, domain.RuleItemNotInOrder},
		{"ConfirmTwice", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusConfirmed) + "/confirm", nil
		}, domain.RuleOrderAlreadyConfirmed},
		{"ConfirmShipped", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusShipped) + "/confirm", nil
		}, domain.RuleOrderAlreadyConfirmed},
		{"ConfirmCancelled", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusCancelled) + "/confirm", nil
		}, domain.RuleOrderCancelled},
		{"ConfirmWithoutItems", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + e.createOrder(t) + "/confirm", nil
		}, domain.RuleOrderHasNoItems},
		{"CancelTwice", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusCancelled) + "/cancel", map[string]any{"reason": "again"}
		}, domain.RuleOrderAlreadyCancelled},
		{"CancelShipped", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusShipped) + "/cancel", map[string]any{"reason": "late"}
		}, domain.RuleOrderAlreadyShipped},
		{"ShipPending", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusPending) + "/ship", nil
		}, domain.RuleOrderNotConfirmed},
		{"ShipCancelled", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusCancelled) + "/ship", nil
		}, domain.RuleOrderCancelled},
		{"ShipTwice", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/orders/" + orderIn(t, domain.OrderStatusShipped) + "/ship", nil
		}, domain.RuleOrderAlreadyShipped},
		{"TooManyItems", func(t *testing.T) (string, string, any) {
			items := make([]item, domain.MaxItems)
			for i := range items {
				items[i] = item{ID: "sku-" + strconv.Itoa(i), Name: "x", PriceCents: 1, Quantity: 1}
			}
			return "POST", "/v1/orders/" + e.createOrder(t, items...) + "/items", pen
		}, domain.RuleTooManyItems},
		{"TotalOverflow", func(t *testing.T) (string, string, any) {
			// Nine lines of 10^18 cents fit in an int64; the tenth does not.
			items := make([]item, 9)
			for i := range items {
				items[i] = item{ID: "gold" + string(rune('0'+i)), Name: "Gold", PriceCents: domain.MaxPriceCents, Quantity: domain.MaxQuantity}
			}
			return "POST", "/v1/orders/" + e.createOrder(t, items...) + "/items",
				item{ID: "gold9", Name: "Gold", PriceCents: domain.MaxPriceCents, Quantity: domain.MaxQuantity}
		}, domain.RuleTotalOverflow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, path, body := tc.setup(t)
			e.unchanged(t, func() {
				e.do(t, method, path, body).rule(t, tc.rule)
			})
		})
	}
}

func TestAPI_StreamFull(t *testing.T) {
	e := newEnv(t, func(c *setup) { c.store.MaxEventsPerStream = 2 })
	id := e.createUser(t)
	e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "B"}).ok(t, http.StatusOK)
	e.unchanged(t, func() {
		e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "C"}).rule(t, "stream_full")
		e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "C"}, "Idempotency-Key", "full-1").rule(t, "stream_full")
	})
	// A failed command stores nothing under its key.
	var n int
	if err := e.pool.QueryRow(t.Context(), `select count(*) from annals_idempotency`).Scan(&n); err != nil || n != 0 {
		t.Errorf("idempotency rows = %d (%v), want 0", n, err)
	}
}

// A command whose event is over the store's MaxEventBytes answers 413 too_large, with the
// limit, and appends nothing; an event at the limit is stored with its text as sent.
func TestAPI_EventTooLarge(t *testing.T) {
	const limit = 4096
	e := newEnv(t, func(c *setup) { c.store.MaxEventBytes = limit })
	user := e.createUser(t)
	order := func(names int) map[string]any {
		items := make([]item, names)
		for i := range items {
			items[i] = item{ID: "i" + strconv.Itoa(i), Name: strings.Repeat("<&>", 66), PriceCents: 100, Quantity: 1}
		}
		return map[string]any{"user_id": user, "items": items}
	}
	// 14 names of 198 bytes fit in 4,096 bytes as sent, but not HTML-escaped (six bytes for
	// each of their characters).
	e.do(t, "POST", "/v1/orders", order(14)).ok(t, http.StatusCreated)
	var data string
	if err := e.pool.QueryRow(t.Context(), `select data::text from annals_events where type = $1`, domain.EventOrderCreated).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("<&>", 66); !strings.Contains(data, `"name":"`+want+`"`) || len(data) > limit {
		t.Errorf("stored data of %d bytes, want at most %d with the names as sent: %.200s", len(data), limit, data)
	}

	e.unchanged(t, func() {
		for _, key := range []string{"", "too-large-1"} {
			var header []string
			if key != "" {
				header = []string{"Idempotency-Key", key}
			}
			got := e.do(t, "POST", "/v1/orders", order(40), header...).fail(t, http.StatusRequestEntityTooLarge, "too_large")
			if got["max_bytes"] != float64(limit) || !strings.Contains(got["message"].(string), "MAX_EVENT_BYTES") {
				t.Errorf("error %v, want max_bytes %d and a message naming MAX_EVENT_BYTES", got, limit)
			}
		}
	})
	var n int
	if err := e.pool.QueryRow(t.Context(), `select count(*) from annals_idempotency`).Scan(&n); err != nil || n != 0 {
		t.Errorf("idempotency rows = %d (%v), want 0", n, err)
	}
}

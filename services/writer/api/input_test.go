package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestAPI_BadInput sends every kind of malformed request and checks its status, code and
// field, and that nothing was appended.
func TestAPI_BadInput(t *testing.T) {
	e := newEnv(t)
	user := e.createUser(t)
	order := e.createOrder(t, book)
	u := "/v1/users/" + user
	o := "/v1/orders/" + order
	bigItems := make([]string, 1001)
	for i := range bigItems {
		bigItems[i] = fmt.Sprintf(`{"id":"i%d","name":"x","price_cents":1,"quantity":1}`, i)
	}
	overflowItems := make([]string, 10)
	for i := range overflowItems {
		overflowItems[i] = fmt.Sprintf(`{"id":"g%d","name":"gold","price_cents":1000000000000,"quantity":1000000}`, i)
	}
	huge := `{"email":"a@example.com","name":"` + strings.Repeat("x", 1<<20) + `"}`

	type tc struct {
		name         string
		method, path string
		body         any
		header       []string
		status       int
		code         string
		field        string // "" to skip the check
	}
	bad := func(name, method, path string, body any, field string, header ...string) tc {
		return tc{name, method, path, body, header, http.StatusBadRequest, "invalid_request", field}
	}
	cases := []tc{
		bad("MalformedJSON", "POST", "/v1/users", raw(`{"email":"a@example.com","name":`), ""),
		bad("NotAnObject", "POST", "/v1/users", raw(`["a@example.com"]`), ""),
		bad("Null", "POST", "/v1/users", raw(`null`), ""),
		bad("TwoValues", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"} {}`), ""),
		bad("TrailingGarbage", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"}x`), ""),
		bad("EmptyBody", "POST", "/v1/users", raw(``), ""),
		bad("UnknownField", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A","admin":true}`), "admin"),
		bad("FieldCase", "POST", "/v1/users", raw(`{"Email":"a@example.com","name":"A"}`), "Email"),
		bad("RepeatedField", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A","name":"B"}`), "name"),
		bad("MissingEmail", "POST", "/v1/users", raw(`{"name":"A"}`), "email"),
		bad("NullName", "POST", "/v1/users", raw(`{"email":"a@example.com","name":null}`), "name"),
		bad("NameNotString", "POST", "/v1/users", raw(`{"email":"a@example.com","name":5}`), "name"),
		bad("EmptyName", "POST", "/v1/users", raw(`{"email":"a@example.com","name":""}`), "name"),
		bad("BlankName", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"  \t "}`), "name"),
		bad("LongName", "POST", "/v1/users", map[string]any{"email": "a@example.com", "name": strings.Repeat("n", 201)}, "name"),
		bad("ControlInName", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A\u0000B"}`), "name"),
		bad("InvalidEmail", "POST", "/v1/users", raw(`{"email":"not-an-email","name":"A"}`), "email"),
		bad("EmailWithName", "POST", "/v1/users", raw(`{"email":"Ada <a@example.com>","name":"A"}`), "email"),
		bad("LongEmail", "POST", "/v1/users", map[string]any{"email": strings.Repeat("a", 250) + "@x.io", "name": "A"}, "email"),
		bad("IDNotUUID", "POST", "/v1/users", raw(`{"id":"42","email":"a@example.com","name":"A"}`), "id"),
		bad("IDNotCanonical", "POST", "/v1/users", map[string]any{"id": "{" + uuid.NewString() + "}", "email": "a@example.com", "name": "A"}, "id"),
		bad("IDNil", "POST", "/v1/users", map[string]any{"id": uuid.Nil.String(), "email": "a@example.com", "name": "A"}, "id"),
		bad("PathIDNotUUID", "PATCH", "/v1/users/42", raw(`{"name":"A"}`), "id"),
		bad("UpdateNothing", "PATCH", u, raw(`{}`), ""),
		bad("UpdateInvalidEmail", "PATCH", u, raw(`{"email":"a@"}`), "email"),
		bad("DeactivateNoReason", "POST", u+"/deactivate", raw(`{}`), "reason"),
		bad("DeactivateEmptyReason", "POST", u+"/deactivate", raw(`{"reason":" "}`), "reason"),
		bad("OrderUserNotUUID", "POST", "/v1/orders", raw(`{"user_id":"bob","items":[]}`), "user_id"),
		bad("OrderNoUser", "POST", "/v1/orders", raw(`{"items":[]}`), "user_id"),
		bad("ItemsNotArray", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":{}}`), "items"),
		bad("ItemNull", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[null]}`), "items[0]"),
		bad("NegativePrice", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":-1,"quantity":1}]}`), "items[0].price_cents"),
		bad("PriceTooHigh", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1000000000001,"quantity":1}]}`), "items[0].price_cents"),
		bad("PriceOverflowsInt64", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":99999999999999999999,"quantity":1}]}`), "items[0].price_cents"),
		bad("PriceFraction", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1.5,"quantity":1}]}`), "items[0].price_cents"),
		bad("PriceString", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":"100","quantity":1}]}`), "items[0].price_cents"),
		bad("NegativeQuantity", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1,"quantity":-3}]}`), "items[0].quantity"),
		bad("ZeroQuantity", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1,"quantity":0}]}`), "items[0].quantity"),
		bad("QuantityTooHigh", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1,"quantity":1000001}]}`), "items[0].quantity"),
		bad("QuantityOverflowsInt64", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1,"quantity":9223372036854775808}]}`), "items[0].quantity"),
		bad("MissingQuantity", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"A","price_cents":1}]}`), "items[0].quantity"),
		bad("EmptyItemName", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"a","name":"","price_cents":1,"quantity":1}]}`), "items[0].name"),
		bad("EmptyItemID", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[{"id":"","name":"A","price_cents":1,"quantity":1}]}`), "items[0].id"),
		bad("LongItemID", "POST", "/v1/orders", map[string]any{"user_id": user, "items": []item{{ID: strings.Repeat("i", 101), Name: "A", PriceCents: 1, Quantity: 1}}}, "items[0].id"),
		bad("DuplicateItemIDs", "POST", "/v1/orders", map[string]any{"user_id": user, "items": []item{book, pen, book}}, "items[2].id"),
		bad("TooManyItems", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[`+strings.Join(bigItems, ",")+`]}`), "items"),
		bad("TotalOverflows", "POST", "/v1/orders", raw(`{"user_id":"`+user+`","items":[`+strings.Join(overflowItems, ",")+`]}`), "items"),
		bad("AddItemNegativePrice", "POST", o+"/items", raw(`{"id":"x","name":"X","price_cents":-100,"quantity":1}`), "price_cents"),
		bad("AddItemUnknownField", "POST", o+"/items", raw(`{"id":"x","name":"X","price":1,"price_cents":1,"quantity":1}`), "price"),
		bad("OrderPathNotUUID", "POST", "/v1/orders/not-a-uuid/confirm", nil, "id"),
		bad("ConfirmWithBody", "POST", o+"/confirm", raw(`{"force":true}`), "force"),
		bad("ConfirmNullBody", "POST", o+"/confirm", raw(`null`), ""),
		bad("RemoveItemIDTooLong", "DELETE", o+"/items/"+strings.Repeat("i", 101), nil, "item_id"),
		bad("CancelNoReason", "POST", o+"/cancel", raw(`{"reason":null}`), "reason"),
		bad("IfMatchNotANumber", "POST", o+"/confirm", nil, "If-Match", "If-Match", `"abc"`),
		bad("IfMatchNegative", "POST", o+"/confirm", nil, "If-Match", "If-Match", `"-1"`),
		bad("IfMatchTwice", "POST", o+"/confirm", nil, "If-Match", "If-Match", `"0"`, "If-Match", `"1"`),
		bad("IdempotencyKeyTooLong", "POST", o+"/confirm", nil, "Idempotency-Key", "Idempotency-Key", strings.Repeat("k", 201)),
		bad("IdempotencyKeyNotASCII", "POST", o+"/confirm", nil, "Idempotency-Key", "Idempotency-Key", "clé"),
		bad("IdempotencyKeyTwice", "POST", o+"/confirm", nil, "Idempotency-Key", "Idempotency-Key", "a", "Idempotency-Key", "b"),
		{"TooLarge", "POST", "/v1/users", raw(huge), nil, http.StatusRequestEntityTooLarge, "too_large", ""},
		{"WrongContentType", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"}`), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"FormContentType", "POST", "/v1/users", raw(`email=a@example.com`), []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"Latin1Charset", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"}`), []string{"Content-Type", "application/json; charset=latin1"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"NoContentType", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"}`), []string{"Content-Type", ""}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"TwoContentTypes", "POST", "/v1/users", raw(`{"email":"a@example.com","name":"A"}`), []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
		{"ConfirmWrongContentType", "POST", o + "/confirm", raw(`{}`), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.unchanged(t, func() {
				got := e.do(t, tc.method, tc.path, tc.body, tc.header...).fail(t, tc.status, tc.code)
				if tc.field != "" && got["field"] != tc.field {
					t.Errorf("field = %v, want %s (%v)", got["field"], tc.field, got["message"])
				}
			})
		})
	}
	t.Run("TooLargeChunked", func(t *testing.T) {
		e.unchanged(t, func() {
			req, err := http.NewRequest("POST", e.url+"/v1/users", strings.NewReader(huge))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // no Content-Length: the limit applies while reading
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want 413", res.StatusCode)
			}
		})
	})
}

func TestAPI_BadQuery(t *testing.T) {
	e := newEnv(t)
	user := e.createUser(t)
	for _, tc := range []struct {
		name, path, field string
	}{
		{"VersionNegative", "/v1/users/" + user + "?version=-1", "version"},
		{"VersionNotANumber", "/v1/users/" + user + "?version=one", "version"},
		{"VersionTwice", "/v1/users/" + user + "?version=0&version=1", "version"},
		{"AtNotATime", "/v1/users/" + user + "?at=yesterday", "at"},
		{"VersionAndAt", "/v1/users/" + user + "?version=0&at=2026-01-01T00:00:00Z", ""},
		{"UnknownParameter", "/v1/users/" + user + "?verbose=1", "verbose"},
		{"UserIDNotUUID", "/v1/users/nobody", "id"},
		{"OrderIDNotUUID", "/v1/orders/123", "id"},
		{"LimitZero", "/v1/events?limit=0", "limit"},
		{"LimitTooHigh", "/v1/events?limit=1001", "limit"},
		{"LimitNotANumber", "/v1/events?limit=ten", "limit"},
		{"AfterNegative", "/v1/events?after=-5", "after"},
		{"SinceNotATime", "/v1/events?since=2026-13-01", "since"},
		{"UntilBeforeSince", "/v1/events?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"},
		{"EmptyType", "/v1/events?type=", "type"},
		{"TypeWithNUL", "/v1/events?type=User%00Created", "type"},
		{"MalformedQuery", "/v1/events?after=%zz", "query"},
		{"StreamIDMalformed", "/v1/streams/nocategory", "stream_id"},
		{"StreamEventsFromNegative", "/v1/streams/user-" + user + "/events?from=-1", "from"},
		{"StreamEventsToBeforeFrom", "/v1/streams/user-" + user + "/events?from=3&to=1", "to"},
		{"StreamEventsLimit", "/v1/streams/user-" + user + "/events?limit=5000", "limit"},
		{"StatsRecent", "/v1/stats?recent=1000", "recent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.do(t, "GET", tc.path, nil).fail(t, http.StatusBadRequest, "invalid_request")
			if tc.field != "" && got["field"] != tc.field {
				t.Errorf("field = %v, want %s (%v)", got["field"], tc.field, got["message"])
			}
		})
	}
}

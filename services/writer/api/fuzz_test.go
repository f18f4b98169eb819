package api_test

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/services/writer/api"
)

// FuzzDecodeCommands feeds arbitrary bodies to every command's decoder. A body is either
// refused with a 400 or gives a command that holds the invariants below, whatever the bytes.
func FuzzDecodeCommands(f *testing.F) {
	for _, s := range []string{
		`{"email":"ada@example.com","name":"Ada"}`,
		`{"id":"0190a4b2-7f3c-7a00-8000-000000000001","email":"a@b.co","name":" A "}`,
		`{"name":"B"}`, `{"email":"b@example.org"}`, `{"name":null,"email":"x@y.z"}`,
		`{"reason":"moved away"}`,
		`{"id":"sku-1","name":"Book","price_cents":1999,"quantity":2}`,
		`{"id":"sku-1","name":"Book","price_cents":1000000000000,"quantity":1000000}`,
		`{"user_id":"0190a4b2-7f3c-7a00-8000-000000000001","items":[{"id":"a","name":"A","price_cents":0,"quantity":1},{"id":"b","name":"B","price_cents":5,"quantity":3}]}`,
		`{"user_id":"0190a4b2-7f3c-7a00-8000-000000000001"}`,
		`{}`, ``, ` `, "\t", `null`, `[]`, `{"a":1}`, `{"name":"x","name":"y"}`, `{"Name":"x"}`,
		`{"price_cents":-1}`, `{"quantity":1e3}`, `{"quantity":9223372036854775808}`,
		`{"email":"\u0000@x.y","name":"\ud800"}`, `{"name":"` + strings.Repeat("é", 201) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		refused := func(what string, err error) bool {
			t.Helper()
			if err == nil {
				if !json.Valid(body) && (what != "empty" || len(strings.TrimSpace(string(body))) > 0) {
					t.Fatalf("%s accepted invalid JSON %q", what, body)
				}
				return false
			}
			if got := api.StatusOf(err); got != http.StatusBadRequest {
				t.Fatalf("%s: %v gives status %d, want 400", what, err, got)
			}
			return true
		}

		if c, err := api.DecodeCreateUser(body); !refused("create user", err) {
			if c.ID != "" {
				checkID(t, "id", c.ID)
			}
			checkEmail(t, c.Email)
			checkText(t, "name", c.Name, domain.MaxNameLength)
			again, err := api.DecodeCreateUser(marshal(t, map[string]any{"id": c.ID, "email": c.Email, "name": c.Name}, "id"))
			if err != nil || again != c {
				t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
			}
		}
		if u, err := api.DecodeUpdateUser(body); !refused("update user", err) {
			if u.Name == nil && u.Email == nil {
				t.Fatalf("update without fields accepted: %q", body)
			}
			if u.Name != nil {
				checkText(t, "name", *u.Name, domain.MaxNameLength)
			}
			if u.Email != nil {
				checkEmail(t, *u.Email)
			}
		}
		if reason, err := api.DecodeReason(body); !refused("reason", err) {
			checkText(t, "reason", reason, domain.MaxReasonLength)
		}
		if it, err := api.DecodeItem(body); !refused("item", err) {
			checkItem(t, it)
			again, err := api.DecodeItem(marshal(t, it))
			if err != nil || again != it {
				t.Fatalf("round trip of %+v: %+v, %v", it, again, err)
			}
		}
		if c, err := api.DecodeCreateOrder(body); !refused("create order", err) {
			if c.ID != "" {
				checkID(t, "id", c.ID)
			}
			checkID(t, "user_id", c.UserID)
			if len(c.Items) > domain.MaxItems {
				t.Fatalf("%d items accepted", len(c.Items))
			}
			seen := map[string]bool{}
			total := new(big.Int)
			for _, it := range c.Items {
				checkItem(t, it)
				if seen[it.ID] {
					t.Fatalf("duplicate item id %q accepted", it.ID)
				}
				seen[it.ID] = true
				total.Add(total, new(big.Int).Mul(big.NewInt(it.PriceCents), big.NewInt(it.Quantity)))
			}
			if !total.IsInt64() || total.Int64() != c.TotalCents {
				t.Fatalf("total_cents = %d, items add up to %s", c.TotalCents, total)
			}
			again, err := api.DecodeCreateOrder(marshal(t, map[string]any{"id": c.ID, "user_id": c.UserID, "items": c.Items}, "id"))
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
			}
		}
		// No body at all, or a JSON empty object: white space alone is no JSON value.
		if err := api.DecodeEmpty(body); !refused("empty", err) && len(body) > 0 {
			var m map[string]any
			if json.Unmarshal(body, &m) != nil || len(m) != 0 {
				t.Fatalf("empty body accepted %q", body)
			}
		}
	})
}

// marshal encodes v, leaving out the given keys when their value is empty.
func marshal(tb testing.TB, v any, omitEmpty ...string) []byte {
	tb.Helper()
	if m, ok := v.(map[string]any); ok {
		for _, k := range omitEmpty {
			if m[k] == "" {
				delete(m, k)
			}
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func checkID(tb testing.TB, field, id string) {
	tb.Helper()
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id || u == uuid.Nil {
		tb.Fatalf("%s %q accepted: not a canonical lower-case UUID", field, id)
	}
}

func checkEmail(tb testing.TB, email string) {
	tb.Helper()
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || len(email) > domain.MaxEmailLength {
		tb.Fatalf("email %q accepted", email)
	}
}

func checkText(tb testing.TB, field, s string, maxLen int) {
	tb.Helper()
	if s == "" || strings.TrimSpace(s) != s || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxLen ||
		strings.ContainsFunc(s, unicode.IsControl) {
		tb.Fatalf("%s %q accepted", field, s)
	}
}

func checkItem(tb testing.TB, it domain.Item) {
	tb.Helper()
	if n := utf8.RuneCountInString(it.ID); n < 1 || n > domain.MaxItemIDLength || strings.TrimSpace(it.ID) != it.ID ||
		strings.ContainsFunc(it.ID, func(r rune) bool { return !unicode.IsPrint(r) }) {
		tb.Fatalf("item id %q accepted", it.ID)
	}
	checkText(tb, "item name", it.Name, domain.MaxNameLength)
	if it.PriceCents < 0 || it.PriceCents > domain.MaxPriceCents {
		tb.Fatalf("price_cents %d accepted", it.PriceCents)
	}
	if it.Quantity < 1 || it.Quantity > domain.MaxQuantity {
		tb.Fatalf("quantity %d accepted", it.Quantity)
	}
}

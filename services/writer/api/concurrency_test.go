package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func TestAPI_IfMatch(t *testing.T) {
	e := newEnv(t)
	id := e.createUser(t)
	e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "B"}).ok(t, http.StatusOK) // version 1

	t.Run("Current", func(t *testing.T) {
		res := e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "C"}, "If-Match", `"1"`)
		if m := res.ok(t, http.StatusOK); m["version"] != 2.0 || res.Header.Get("ETag") != `"2"` {
			t.Errorf("got %v, ETag %s", m, res.Header.Get("ETag"))
		}
	})
	t.Run("Stale", func(t *testing.T) {
		e.unchanged(t, func() {
			got := e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "D"}, "If-Match", `"1"`).fail(t, http.StatusConflict, "version_conflict")
			if got["expected"] != 1.0 || got["actual"] != 2.0 || got["stream_id"] != "user-"+id {
				t.Errorf("error = %v, want expected 1, actual 2", got)
			}
		})
	})
	t.Run("Unquoted", func(t *testing.T) {
		e.do(t, "POST", "/v1/users/"+id+"/deactivate", map[string]any{"reason": "x"}, "If-Match", `2`).ok(t, http.StatusOK)
	})
	t.Run("CreateExisting", func(t *testing.T) {
		e.unchanged(t, func() {
			got := e.do(t, "POST", "/v1/users", map[string]any{"id": id, "email": "a@example.com", "name": "A"}, "If-Match", `"0"`).
				fail(t, http.StatusConflict, "version_conflict")
			if got["expected"] != 0.0 || got["actual"] != 3.0 {
				t.Errorf("error = %v", got)
			}
		})
	})
	for _, keys := range []bool{false, true} {
		t.Run("Concurrent/keys="+strconv.FormatBool(keys), func(t *testing.T) {
			// Commands expecting the same version: exactly one wins, whatever the timing.
			order := e.createOrder(t, book)
			codes := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Go(func() {
					it := item{ID: "item-" + strconv.Itoa(i), Name: "Thing", PriceCents: 500, Quantity: 1}
					hdr := []string{"If-Match", `"0"`}
					if keys {
						hdr = append(hdr, "Idempotency-Key", order+it.ID)
					}
					res := e.do(t, "POST", "/v1/orders/"+order+"/items", it, hdr...)
					mu.Lock()
					defer mu.Unlock()
					codes[res.Status]++
				})
			}
			wg.Wait()
			if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 4 {
				t.Errorf("statuses = %v, want one 200 and four 409", codes)
			}
		})
	}
}

func TestAPI_ConflictRetry(t *testing.T) {
	// Without If-Match, concurrent commands on one stream are reloaded and re-run after a
	// conflict. With n = retries+1 commands, each loses at most n-1 times, so all succeed.
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		keys bool // each command with its own Idempotency-Key: the transactional save
	}{{"Plain", false}, {"IdempotencyKeys", true}} {
		t.Run(tc.name, func(t *testing.T) {
			order := e.createOrder(t)
			const n = 4
			var wg sync.WaitGroup
			res := make([]response, n)
			for i := range n {
				wg.Go(func() {
					it := item{ID: uuid.NewString(), Name: "Thing", PriceCents: 100, Quantity: 1}
					var hdr []string
					if tc.keys {
						hdr = []string{"Idempotency-Key", it.ID}
					}
					res[i] = e.do(t, "POST", "/v1/orders/"+order+"/items", it, hdr...)
				})
			}
			wg.Wait()
			for i, r := range res {
				if r.Status != http.StatusOK {
					t.Errorf("command %d: %d %s", i, r.Status, r.Body)
				}
			}
			m := e.do(t, "GET", "/v1/orders/"+order, nil).ok(t, http.StatusOK)
			if m["version"] != float64(n) || len(m["items"].([]any)) != n || m["total_cents"] != float64(n*100) {
				t.Errorf("order = %v", m)
			}
		})
	}
}

// same checks that responses are identical: status, ETag and body bytes.
func same(tb testing.TB, got, want response) {
	tb.Helper()
	if got.Status != want.Status || got.Header.Get("ETag") != want.Header.Get("ETag") || !bytes.Equal(got.Body, want.Body) {
		tb.Errorf("response = %d %s %s, want %d %s %s", got.Status, got.Header.Get("ETag"), got.Body,
			want.Status, want.Header.Get("ETag"), want.Body)
	}
}

func TestAPI_Idempotency(t *testing.T) {
	e := newEnv(t)

	t.Run("SequentialRetry", func(t *testing.T) {
		body := map[string]any{"email": "ada@example.com", "name": "Ada"}
		var first response
		e.appended(t, 1, func() {
			first = e.do(t, "POST", "/v1/users", body, "Idempotency-Key", "create-ada")
			first.ok(t, http.StatusCreated)
			for range 3 {
				again := e.do(t, "POST", "/v1/users", body, "Idempotency-Key", "create-ada")
				same(t, again, first)
				if again.Header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("replay without Idempotent-Replayed header")
				}
			}
		})
		if first.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("first response marked as a replay")
		}
	})
	t.Run("ReplayIgnoresStaleIfMatch", func(t *testing.T) {
		id := e.createUser(t)
		var first response
		e.appended(t, 1, func() {
			first = e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "B"}, "Idempotency-Key", "rename-"+id, "If-Match", `"0"`)
			first.ok(t, http.StatusOK)
			same(t, e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "B"}, "Idempotency-Key", "rename-"+id, "If-Match", `"0"`), first)
		})
	})
	t.Run("DifferentBody", func(t *testing.T) {
		e.do(t, "POST", "/v1/users", map[string]any{"email": "b@example.com", "name": "B"}, "Idempotency-Key", "create-b").ok(t, http.StatusCreated)
		e.unchanged(t, func() {
			e.do(t, "POST", "/v1/users", map[string]any{"email": "b@example.com", "name": "Bee"}, "Idempotency-Key", "create-b").
				fail(t, http.StatusUnprocessableEntity, "idempotency_key_reused")
			// The exact bytes count: the same JSON spelled differently is another request.
			e.do(t, "POST", "/v1/users", raw(`{"name":"B","email":"b@example.com"}`), "Idempotency-Key", "create-b").
				fail(t, http.StatusUnprocessableEntity, "idempotency_key_reused")
		})
	})
	t.Run("DifferentPath", func(t *testing.T) {
		a, b := e.createOrder(t, book), e.createOrder(t, book)
		e.do(t, "POST", "/v1/orders/"+a+"/confirm", nil, "Idempotency-Key", "confirm-1").ok(t, http.StatusOK)
		e.unchanged(t, func() {
			e.do(t, "POST", "/v1/orders/"+b+"/confirm", nil, "Idempotency-Key", "confirm-1").
				fail(t, http.StatusUnprocessableEntity, "idempotency_key_reused")
		})
	})
	t.Run("FailedCommandStoresNothing", func(t *testing.T) {
		order := e.createOrder(t)
		e.unchanged(t, func() {
			e.do(t, "POST", "/v1/orders/"+order+"/confirm", nil, "Idempotency-Key", "confirm-"+order).rule(t, "order_has_no_items")
		})
		e.do(t, "POST", "/v1/orders/"+order+"/items", pen).ok(t, http.StatusOK)
		e.appended(t, 1, func() {
			e.do(t, "POST", "/v1/orders/"+order+"/confirm", nil, "Idempotency-Key", "confirm-"+order).ok(t, http.StatusOK)
		})
	})
	t.Run("Concurrent", func(t *testing.T) {
		// Ten identical requests at once, each kind of command: one appends, all answer alike.
		user := e.createUser(t)
		order := e.createOrder(t, book)
		for _, tc := range []struct {
			name, method, path string
			body               any
		}{
			{"CreateUser", "POST", "/v1/users", map[string]any{"email": "c@example.com", "name": "C"}},
			{"CreateUserWithID", "POST", "/v1/users", map[string]any{"id": uuid.NewString(), "email": "d@example.com", "name": "D"}},
			{"UpdateUser", "PATCH", "/v1/users/" + user, map[string]any{"name": "Renamed"}},
			{"AddItem", "POST", "/v1/orders/" + order + "/items", pen},
			{"Confirm", "POST", "/v1/orders/" + order + "/confirm", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key := "concurrent-" + uuid.NewString()
				res := make([]response, 10)
				e.appended(t, 1, func() {
					var wg sync.WaitGroup
					for i := range res {
						wg.Go(func() { res[i] = e.do(t, tc.method, tc.path, tc.body, "Idempotency-Key", key) })
					}
					wg.Wait()
				})
				if res[0].Status >= 300 {
					t.Fatalf("status %d: %s", res[0].Status, res[0].Body)
				}
				for _, r := range res[1:] {
					same(t, r, res[0])
				}
			})
		}
	})
	t.Run("SnapshotAfterCommit", func(t *testing.T) {
		e := newEnv(t, func(c *setup) { c.api.SnapshotEvery = 2 })
		id := e.createUser(t)
		e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "B"}, "Idempotency-Key", "snap-"+id).ok(t, http.StatusOK)
		var version int64
		if err := e.pool.QueryRow(context.Background(), `select max(version) from annals_snapshots where stream_id = $1`, "user-"+id).Scan(&version); err != nil || version != 1 {
			t.Errorf("snapshot version = %d (%v), want 1", version, err)
		}
		if m := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK); m["name"] != "B" {
			t.Errorf("user = %v", m)
		}
	})
}

func TestAPI_Correlation(t *testing.T) {
	e := newEnv(t)
	res := e.do(t, "POST", "/v1/users", map[string]any{"email": "a@example.com", "name": "A"}, "X-Correlation-ID", "checkout-42")
	m := res.ok(t, http.StatusCreated)
	commandID := res.Header.Get("X-Command-ID")
	if got := res.Header.Get("X-Correlation-ID"); got != "checkout-42" {
		t.Errorf("X-Correlation-ID = %q", got)
	}
	res2 := e.do(t, "PATCH", "/v1/users/"+m["id"].(string), map[string]any{"name": "B"}, "Idempotency-Key", "corr")
	res2.ok(t, http.StatusOK)

	var page struct {
		Events []struct {
			CorrelationID string `json:"correlation_id"`
			CausationID   string `json:"causation_id"`
		} `json:"events"`
	}
	e.do(t, "GET", "/v1/streams/"+m["stream_id"].(string)+"/events", nil).into(t, http.StatusOK, &page)
	if len(page.Events) != 2 {
		t.Fatalf("events = %+v", page.Events)
	}
	if got := page.Events[0]; got.CorrelationID != "checkout-42" || got.CausationID != commandID {
		t.Errorf("event 0 correlation/causation = %q/%q, want checkout-42/%s", got.CorrelationID, got.CausationID, commandID)
	}
	// Without X-Correlation-ID the middleware's generated id is stored.
	if got := page.Events[1]; got.CorrelationID != res2.Header.Get("X-Correlation-ID") || got.CorrelationID == "" ||
		got.CausationID != res2.Header.Get("X-Command-ID") {
		t.Errorf("event 1 correlation/causation = %q/%q, want %s/%s", got.CorrelationID, got.CausationID,
			res2.Header.Get("X-Correlation-ID"), res2.Header.Get("X-Command-ID"))
	}
}

package api_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/pgkeys"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
)

// encryptedEnv is a writer that encrypts personal data, with a snapshot after every event.
func encryptedEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, func(s *setup) {
		s.api.SnapshotEvery = 1
		s.onPool = func(tb testing.TB, pool *pgxpool.Pool, s *setup) {
			if _, err := pgkeys.Migrate(context.Background(), pool, nil); err != nil {
				tb.Fatal(err)
			}
			s.api.Keys = shred.NewKeyring(shredtest.NewKEK(tb), pgkeys.New(pool), shred.Options{})
		}
	})
}

// rowsHolding returns every row of every table of the test's schema whose text holds one of
// the values, as text or in the hex form of a bytea column.
func (e *env) rowsHolding(t *testing.T, values ...string) []string {
	t.Helper()
	var found []string
	for _, row := range testenv.SchemaRows(t, e.pool) {
		for _, v := range values {
			if strings.Contains(row.Text, v) || strings.Contains(row.Text, hex.EncodeToString([]byte(v))) {
				found = append(found, row.Table+": "+row.Text)
			}
		}
	}
	return found
}

func TestAPI_PersonalDataEncrypted(t *testing.T) {
	e := encryptedEnv(t)
	const email, name = "grace.hopper@navy.example", "Grace Brewster Hopper"
	const email2, name2 = "amazing.grace@cobol.example", "Grace Murray"
	m := e.do(t, "POST", "/v1/users", map[string]any{"email": email, "name": name}, "Idempotency-Key", "k1").ok(t, http.StatusCreated)
	id := m["id"].(string)
	e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"email": email2, "name": name2}, "Idempotency-Key", "k2").ok(t, http.StatusOK)

	if found := e.rowsHolding(t, email, name, email2, name2, "grace", "Grace"); len(found) > 0 {
		t.Errorf("clear personal data stored:\n%s", strings.Join(found, "\n"))
	}
	var snapshots int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_snapshots`).Scan(&snapshots); err != nil || snapshots == 0 {
		t.Fatalf("snapshots = %d, %v: the scan must cover some", snapshots, err)
	}
	var events int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_events where data->>'email' like 'enc:v1:%'`).Scan(&events); err != nil || events != 2 {
		t.Errorf("events with an encrypted email = %d, %v; want 2", events, err)
	}

	got := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK)
	if got["email"] != email2 || got["name"] != name2 {
		t.Errorf("GET user = %v, want the clear email and name", got)
	}
	old := e.do(t, "GET", "/v1/users/"+id+"?version=0", nil).ok(t, http.StatusOK)
	if old["email"] != email || old["name"] != name {
		t.Errorf("GET user at version 0 = %v, want the first email and name", old)
	}
	e.do(t, "POST", "/v1/users", map[string]any{"email": "not an email", "name": "X"}).fail(t, http.StatusBadRequest, "invalid_request")
}

func TestAPI_ErasePersonalData(t *testing.T) {
	e := encryptedEnv(t)
	const email, name = "ada.lovelace@analytical.example", "Augusta Ada King"
	id := e.do(t, "POST", "/v1/users", map[string]any{"email": email, "name": name}).ok(t, http.StatusCreated)["id"].(string)
	e.do(t, "POST", "/v1/orders", map[string]any{"user_id": id}).ok(t, http.StatusCreated)
	path := "/v1/users/" + id + "/personal-data"

	t.Run("OK", func(t *testing.T) {
		var first map[string]any
		e.appended(t, 1, func() { first = e.do(t, "DELETE", path, nil).ok(t, http.StatusAccepted) })
		if first["id"] != id || first["version"] != float64(1) || first["position"] == nil || first["erased_at"] == "" {
			t.Errorf("erasure = %v", first)
		}
		var again map[string]any
		e.unchanged(t, func() { again = e.do(t, "DELETE", path, nil).ok(t, http.StatusAccepted) })
		if a, b := mustJSON(t, first), mustJSON(t, again); a != b {
			t.Errorf("second erasure = %s, want the first's %s", b, a)
		}
		var types []string
		rows, err := e.pool.Query(context.Background(), `select type from annals_events where stream_id = $1 order by version`, "user-"+id)
		if err != nil {
			t.Fatal(err)
		}
		if types, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if want := []string{domain.EventUserCreated, domain.EventUserPersonalDataErased}; strings.Join(types, ",") != strings.Join(want, ",") {
			t.Errorf("stream = %v, want %v", types, want)
		}
		var snapshots int
		if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_snapshots where stream_id = $1`, "user-"+id).Scan(&snapshots); err != nil || snapshots != 0 {
			t.Errorf("snapshots of the erased user = %d, %v; want 0", snapshots, err)
		}
		var wrapped *[]byte
		var by string
		if err := e.pool.QueryRow(context.Background(), `select wrapped_key, erased_by from annals_subject_keys where subject = $1`, id).Scan(&wrapped, &by); err != nil || wrapped != nil || by == "" {
			t.Errorf("key row = %v, %q, %v; want the key gone and who erased it", wrapped, by, err)
		}
	})
	t.Run("Reads", func(t *testing.T) {
		u := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK)
		if u["email"] != "" || u["name"] != "" || u["erased_at"] == nil || u["status"] != "active" {
			t.Errorf("erased user = %v, want email and name empty, erased_at, still active", u)
		}
		old := e.do(t, "GET", "/v1/users/"+id+"?version=0", nil).ok(t, http.StatusOK)
		if old["email"] != domain.Erased || old["name"] != domain.Erased {
			t.Errorf("erased user at version 0 = %v, want %s", old, domain.Erased)
		}
	})
	t.Run("RuleUserErased", func(t *testing.T) {
		e.unchanged(t, func() {
			e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": "Ada"}).rule(t, domain.RuleUserErased)
		})
		e.do(t, "POST", "/v1/users/"+id+"/deactivate", map[string]any{"reason": "erased"}).ok(t, http.StatusOK)
	})
	t.Run("NotFound", func(t *testing.T) {
		e.unchanged(t, func() {
			e.do(t, "DELETE", "/v1/users/"+uuid.NewString()+"/personal-data", nil).fail(t, http.StatusNotFound, "not_found")
		})
	})
	t.Run("InvalidRequest", func(t *testing.T) {
		e.do(t, "DELETE", "/v1/users/not-a-uuid/personal-data", nil).fail(t, http.StatusBadRequest, "invalid_request")
		e.do(t, "DELETE", path, map[string]any{"why": "x"}).fail(t, http.StatusBadRequest, "invalid_request")
	})
}

func TestAPI_ErasePersonalData_NotEncrypted(t *testing.T) {
	e := newEnv(t)
	id := e.createUser(t)
	e.unchanged(t, func() {
		e.do(t, "DELETE", "/v1/users/"+id+"/personal-data", nil).fail(t, http.StatusConflict, "personal_data_not_encrypted")
	})
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

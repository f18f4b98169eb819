package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/writer/api"
)

type schemaRow struct {
	Fingerprint  string    `json:"fingerprint"`
	Type         string    `json:"type"`
	Version      int       `json:"version"`
	Schema       string    `json:"schema"`
	RegisteredAt time.Time `json:"registered_at"`
}

func TestAPI_Schemas(t *testing.T) {
	e := newEnv(t)
	c := domain.Catalog()

	t.Run("Empty", func(t *testing.T) {
		var body struct {
			Schemas []schemaRow `json:"schemas"`
		}
		res := e.do(t, "GET", "/v1/schemas", nil)
		res.into(t, http.StatusOK, &body)
		if body.Schemas == nil || len(body.Schemas) != 0 || !strings.Contains(string(res.Body), `"schemas":[]`) {
			t.Errorf("before registration: %s, want an empty list", res.Body)
		}
	})

	if err := c.Register(context.Background(), e.pool); err != nil {
		t.Fatalf("Register: %v", err)
	}
	infos := c.Schemas()

	t.Run("List", func(t *testing.T) {
		var body struct {
			Schemas []schemaRow `json:"schemas"`
		}
		e.do(t, "GET", "/v1/schemas", nil).into(t, http.StatusOK, &body)
		if len(body.Schemas) != len(infos) {
			t.Fatalf("%d schemas, want %d", len(body.Schemas), len(infos))
		}
		for i, got := range body.Schemas {
			in := infos[i]
			if got.Fingerprint != in.FingerprintHex || got.Type != in.Type || got.Version != in.Version ||
				got.Schema != in.Schema || got.RegisteredAt.IsZero() {
				t.Errorf("schema %d = %+v, want %+v", i, got, in)
			}
			if !json.Valid([]byte(got.Schema)) {
				t.Errorf("%s v%d: schema is not JSON: %s", got.Type, got.Version, got.Schema)
			}
		}
	})

	t.Run("One", func(t *testing.T) {
		in, _ := c.Current("UserProfileUpdated")
		for _, fp := range []string{in.FingerprintHex, strings.ToUpper(in.FingerprintHex)} {
			var got schemaRow
			e.do(t, "GET", "/v1/schemas/"+fp, nil).into(t, http.StatusOK, &got)
			if got.Fingerprint != in.FingerprintHex || got.Type != "UserProfileUpdated" || got.Version != 2 || got.Schema != in.Schema {
				t.Errorf("GET %s = %+v, want %+v", fp, got, in)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		e.do(t, "GET", "/v1/schemas/0000000000000001", nil).fail(t, http.StatusNotFound, "not_found")
	})

	t.Run("Malformed", func(t *testing.T) {
		for _, fp := range []string{"1", "000000000000000g", "00000000000000001", "0x00000000000001", "+000000000000001"} {
			if f := e.do(t, "GET", "/v1/schemas/"+fp, nil).fail(t, http.StatusBadRequest, "invalid_request"); f["field"] != "fingerprint" {
				t.Errorf("%s: field = %v, want fingerprint", fp, f["field"])
			}
		}
		e.do(t, "GET", "/v1/schemas?type=UserCreated", nil).fail(t, http.StatusBadRequest, "invalid_request")
	})

	t.Run("OpenAPI", func(t *testing.T) {
		b, err := json.Marshal(e.router.OpenAPI("annals-writer", "test"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Paths map[string]map[string]struct {
				Summary   string                    `json:"summary"`
				Responses map[string]map[string]any `json:"responses"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for path, codes := range map[string][]string{
			"/v1/schemas":               {"200", "400", "503"},
			"/v1/schemas/{fingerprint}": {"200", "400", "404", "503"},
		} {
			op, ok := doc.Paths[path]["get"]
			if !ok || op.Summary == "" {
				t.Errorf("GET %s is not documented: %+v", path, doc.Paths[path])
				continue
			}
			for _, code := range codes {
				if op.Responses[code] == nil {
					t.Errorf("GET %s: response %s undocumented", path, code)
				}
			}
		}
	})
}

func TestAPI_Schemas_Unavailable(t *testing.T) {
	// A pool on a port where nothing listens.
	pool, err := pgxpool.New(context.Background(), "postgres://annals@127.0.0.1:1/annals?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	r := httpx.NewRouter()
	api.New(postgres.New(pool, postgres.Options{}), api.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL}
	for _, path := range []string{"/v1/schemas", "/v1/schemas/0000000000000001"} {
		e.do(t, "GET", path, nil).fail(t, http.StatusServiceUnavailable, "unavailable")
	}
}

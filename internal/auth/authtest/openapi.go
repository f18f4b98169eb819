package authtest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/auth"
)

// publicRoutes are the routes every service serves without credentials (see Authentication in
// the README); /healthz/<name> is public for every name.
var publicRoutes = []string{"GET /livez", "GET /readyz", "GET /metrics", "GET /openapi.json"}

func isPublic(route string) bool {
	return slices.Contains(publicRoutes, route) || strings.HasPrefix(route, "GET /healthz/")
}

// document is what CheckOpenAPI reads of an OpenAPI document.
type document struct {
	OpenAPI    string `json:"openapi"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
	} `json:"components"`
	Paths map[string]map[string]struct {
		Security  *[]map[string][]string `json:"security"`
		Responses map[string]struct {
			Headers map[string]struct {
				Required bool `json:"required"`
			} `json:"headers"`
			Content map[string]struct {
				Schema struct {
					Required []string `json:"required"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
}

// CheckOpenAPI reads the service's /openapi.json at base, without credentials, and requires
// that it declares exactly what the service enforces: an HTTP bearer scheme; every route of
// policy, with security naming the route's scope under every alternative (the scope the
// policy gives and the one routes states, which must agree), and 401 and 403 in the standard
// error body with a WWW-Authenticate header (required on 401); every other operation one of the
// public routes, with security: []. routes must name the same routes as policy's protected
// ones, as for Check.
func CheckOpenAPI(t *testing.T, base string, policy auth.Policy, routes map[string]Route) {
	t.Helper()
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json without credentials: %d %s", resp.StatusCode, b)
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("/openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q: want 3.1.x, which lets an HTTP bearer requirement name scopes", doc.OpenAPI)
	}
	bearer, ok := doc.Components.SecuritySchemes[auth.SchemeBearer]
	if !ok || bearer.Type != "http" || !strings.EqualFold(bearer.Scheme, "bearer") {
		t.Errorf("securitySchemes.%s = %+v (declared: %t), want type http, scheme bearer", auth.SchemeBearer, bearer, ok)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			route := strings.ToUpper(method) + " " + path
			documented[route] = true
			need, protected := policy[route]
			if !protected || need == auth.Public {
				if !isPublic(route) {
					t.Errorf("%s is documented but neither in the service's policy nor a public route", route)
				}
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s is public: want security: [], got %v", route, op.Security)
				}
				continue
			}
			if stated := routes[route].Scope; stated != need {
				t.Errorf("%s: the policy gives scope %q, the test states %q", route, need, stated)
			}
			if op.Security == nil || len(*op.Security) == 0 {
				t.Errorf("%s needs %s: its operation declares no security (%v)", route, need, op.Security)
			} else {
				for i, alt := range *op.Security {
					if i == 0 && alt[auth.SchemeBearer] == nil {
						t.Errorf("%s: the first security requirement is %v, want the %s scheme", route, alt, auth.SchemeBearer)
					}
					for scheme, scopes := range alt {
						if _, ok := doc.Components.SecuritySchemes[scheme]; !ok {
							t.Errorf("%s: security names the undeclared scheme %q", route, scheme)
						}
						if !slices.Equal(scopes, []string{need}) {
							t.Errorf("%s: security %s scopes %v, the policy enforces [%s]", route, scheme, scopes, need)
						}
					}
					if len(alt) != 1 {
						t.Errorf("%s: security requirement %v, want one scheme in each", route, alt)
					}
				}
			}
			for _, code := range []string{"401", "403"} {
				r, ok := op.Responses[code]
				switch {
				case !ok:
					t.Errorf("%s needs %s: its operation does not document %s", route, need, code)
					continue
				case !slices.Contains(r.Content["application/json"].Schema.Required, "error"):
					t.Errorf("%s: %s is not documented in the standard error body: %+v", route, code, r.Content)
				}
				h, ok := r.Headers["WWW-Authenticate"]
				if !ok || (code == "401" && !h.Required) {
					t.Errorf("%s: %s documents WWW-Authenticate %+v (present: %t), want it (required on 401)", route, code, h, ok)
				}
			}
		}
	}
	for route, need := range policy {
		if !documented[route] {
			t.Errorf("%s (scope %s) is in the policy but not in /openapi.json", route, need)
		}
	}
}

package auth_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/auth"
)

func TestAuthenticator_Security(t *testing.T) {
	policy := auth.Policy{"GET /livez": auth.Public, "POST /commands": auth.ScopeCommands, "GET /audit": auth.ScopeAuditRead}
	keys, err := auth.ParseAPIKeys("ci:commands:" + auth.HashKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	discovery := iss + "/.well-known/openid-configuration"
	for _, tc := range []struct {
		name    string
		cfg     auth.Config
		schemes []string // declared, sorted
		oidcURL string   // the openIdConnect scheme's URL, when declared
	}{
		{name: "APIKeys", cfg: auth.Config{APIKeys: keys}, schemes: []string{auth.SchemeBearer}},
		{name: "Discovery", cfg: auth.Config{APIKeys: keys, OIDC: auth.OIDC{Issuer: iss + "/", Audience: aud}},
			schemes: []string{auth.SchemeBearer, auth.SchemeOIDC}, oidcURL: discovery},
		// A key set named in the configuration: the issuer may publish no discovery document.
		{name: "JWKSURL", cfg: auth.Config{OIDC: auth.OIDC{Issuer: iss, Audience: aud, JWKSURL: "https://keys.test/jwks"}},
			schemes: []string{auth.SchemeBearer}},
		{name: "Disabled", cfg: auth.Config{Disabled: true, APIKeys: keys}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := auth.New(context.Background(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			sec := a.Security(policy)
			if got := slices.Sorted(maps.Keys(sec.Schemes)); !slices.Equal(got, tc.schemes) {
				t.Errorf("schemes %v, want %v", got, tc.schemes)
			}
			if tc.oidcURL != "" {
				if got := sec.Schemes[auth.SchemeOIDC].(map[string]any)["openIdConnectUrl"]; got != tc.oidcURL {
					t.Errorf("openIdConnectUrl = %v, want %s", got, tc.oidcURL)
				}
			}
			if bearer, ok := sec.Schemes[auth.SchemeBearer].(map[string]any); ok {
				desc, _ := bearer["description"].(string)
				for _, sc := range auth.Scopes() {
					if !strings.Contains(desc, " "+sc+": ") {
						t.Errorf("the bearer scheme's description does not say what %s opens: %s", sc, desc)
					}
				}
			}
			for route, need := range policy {
				reqs, ok := sec.Requirements[route]
				if !ok {
					t.Errorf("%s has no requirement", route)
					continue
				}
				if need == auth.Public || tc.cfg.Disabled {
					if len(reqs) != 0 {
						t.Errorf("%s is open: requirements %v, want none", route, reqs)
					}
					continue
				}
				if len(reqs) != len(tc.schemes) {
					t.Errorf("%s: requirements %v, want one for each of %v", route, reqs, tc.schemes)
				}
				for _, r := range reqs {
					for scheme, scopes := range r {
						if !slices.Equal(scopes, []string{need}) {
							t.Errorf("%s: %s requires %v, want [%s]", route, scheme, scopes, need)
						}
					}
				}
			}
			_, has401 := sec.Refusals[401]
			_, has403 := sec.Refusals[403]
			if has401 != !tc.cfg.Disabled || has403 != !tc.cfg.Disabled {
				t.Errorf("refusals %v with authentication disabled: %t", slices.Sorted(maps.Keys(sec.Refusals)), tc.cfg.Disabled)
			}
			_, has503 := sec.Refusals[503]
			if want := tc.cfg.OIDC.Issuer != "" && !tc.cfg.Disabled; has503 != want {
				t.Errorf("503 documented: %t, want %t (the token issuer's keys unreachable)", has503, want)
			}
		})
	}
}

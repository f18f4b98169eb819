package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
)

// Without the personal-data scope, users carry their email and name redacted, in a single
// user and in the list.
func TestRedaction(t *testing.T) {
	e := newEnv(t)
	id := e.user(t, domain.UserStatusActive)
	for _, tc := range []struct {
		name        string
		scopes      []string
		email, user string
	}{
		{"WithoutPersonalData", []string{auth.ScopeReadModelsRead}, auth.Redacted, auth.Redacted},
		{"WithPersonalData", []string{auth.ScopeReadModelsRead, auth.ScopePersonalData}, "u@example.com", "U"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := auth.Principal{Kind: auth.KindAPIKey, Name: "t", Scopes: tc.scopes}
			srv := httptest.NewServer(httpx.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.router.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
			}), nil, nil))
			defer srv.Close()
			one := (&env{url: srv.URL}).get(t, "/v1/users/"+id.String())
			var u struct{ Email, Name string }
			one.into(t, http.StatusOK, &u)
			if u.Email != tc.email || u.Name != tc.user {
				t.Errorf("GET /v1/users/{id}: %+v", u)
			}
			var page struct {
				Users []struct{ Email, Name string } `json:"users"`
			}
			(&env{url: srv.URL}).get(t, "/v1/users").into(t, http.StatusOK, &page)
			if len(page.Users) != 1 || page.Users[0].Email != tc.email || page.Users[0].Name != tc.user {
				t.Errorf("GET /v1/users: %+v", page.Users)
			}
		})
	}
}

// Package authtest checks a running service's authentication and authorization from the
// outside: every route of its Policy refuses every kind of bad credentials with 401 or 403
// and changes nothing, and each scope reaches exactly the routes that need it. It provides
// the OIDC issuer (an in-test key set) and the API keys the service must be configured with.
//
// It is for tests only and must never be imported by a service.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/testenv"
)

// Audience is the audience the Issuer's tokens are for.
const Audience = "annals-test"

// Issuer is an OIDC issuer for a test: an RSA key published as a key set over HTTP, and a
// second key it never publishes.
type Issuer struct {
	URL, JWKSURL string
	key, other   *rsa.PrivateKey
	// keys holds an API key per scope, by scope.
	keys    map[string]string
	entries []string
}

// NewIssuer starts an Issuer and makes an API key for each scope.
func NewIssuer(tb testing.TB) *Issuer {
	tb.Helper()
	is := &Issuer{keys: map[string]string{}}
	var err error
	if is.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	if is.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: "test-1", Algorithm: "RS256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(set)
	}))
	tb.Cleanup(srv.Close)
	is.URL, is.JWKSURL = "https://issuer.annals.test", srv.URL
	for _, sc := range auth.Scopes() {
		key, entry, err := auth.NewAPIKey("only-"+strings.ReplaceAll(sc, ":", "-"), sc)
		if err != nil {
			tb.Fatal(err)
		}
		is.keys[sc] = key
		is.entries = append(is.entries, entry)
	}
	return is
}

// Env is the configuration a service needs to accept the Issuer's tokens, its per-scope keys
// and testenv.APIKey (every scope).
func (is *Issuer) Env() map[string]string {
	return map[string]string{
		"API_KEYS":      strings.Join(append([]string{testenv.APIKeys}, is.entries...), ","),
		"OIDC_ISSUER":   is.URL,
		"OIDC_AUDIENCE": Audience,
		"OIDC_JWKS_URL": is.JWKSURL,
	}
}

// Key returns the API key that holds scope alone.
func (is *Issuer) Key(scope string) string { return is.keys[scope] }

// Claims are a token's claims: good ones by Claims, which a case then spoils.
type Claims struct {
	jwt.Claims
	Scope string `json:"scope,omitempty"`
}

// Claims returns valid claims for subject with scopes.
func (is *Issuer) Claims(subject string, scopes ...string) Claims {
	now := time.Now()
	return Claims{Claims: jwt.Claims{Issuer: is.URL, Subject: subject, Audience: jwt.Audience{Audience},
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}, Scope: strings.Join(scopes, " ")}
}

// Token signs c with the published key.
func (is *Issuer) Token(tb testing.TB, c Claims) string { return sign(tb, is.key, "test-1", c) }

func sign(tb testing.TB, key *rsa.PrivateKey, kid string, c Claims) string {
	tb.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Case is one kind of bad credentials: the Authorization header it sends (none when empty)
// and the status it must get.
type Case struct {
	Name, Authorization string
	Status              int
}

// BadCases are the credentials every protected route refuses: no header, a malformed one,
// an expired or not yet valid token, a wrong issuer or audience, an unknown key id, a token
// signed with another key, alg none, an unknown (or revoked) API key, and a token and an API
// key without the route's scope (403; scope is the route's).
func (is *Issuer) BadCases(tb testing.TB, scope string) []Case {
	tb.Helper()
	c := func(f func(*Claims)) Claims {
		cl := is.Claims("tester", auth.Scopes()...)
		f(&cl)
		return cl
	}
	past := time.Now().Add(-2 * time.Hour)
	none := func() string {
		h, _ := json.Marshal(map[string]string{"alg": "none", "kid": "test-1"})
		p, _ := json.Marshal(is.Claims("tester", auth.Scopes()...))
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	var others []string
	for _, sc := range auth.Scopes() {
		if sc != scope {
			others = append(others, sc)
		}
	}
	wrongScopeKey := is.keys[auth.ScopePersonalData] // opens no route
	return []Case{
		{"NoHeader", "", 401},
		{"NotBearer", "Basic dGVzdDp0ZXN0", 401},
		{"EmptyBearer", "Bearer ", 401},
		{"GarbageJWT", "Bearer eyJ.eyJ.sig", 401},
		{"Expired", "Bearer " + is.Token(tb, c(func(cl *Claims) {
			cl.Expiry, cl.IssuedAt = jwt.NewNumericDate(past.Add(time.Hour)), jwt.NewNumericDate(past)
		})), 401},
		{"NotYetValid", "Bearer " + is.Token(tb, c(func(cl *Claims) { cl.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), 401},
		{"WrongIssuer", "Bearer " + is.Token(tb, c(func(cl *Claims) { cl.Issuer = "https://elsewhere.test" })), 401},
		{"WrongAudience", "Bearer " + is.Token(tb, c(func(cl *Claims) { cl.Audience = jwt.Audience{"other"} })), 401},
		{"UnknownKid", "Bearer " + sign(tb, is.other, "test-9", c(func(*Claims) {})), 401},
		{"OtherKey", "Bearer " + sign(tb, is.other, "test-1", c(func(*Claims) {})), 401},
		{"AlgNone", "Bearer " + none(), 401},
		{"UnknownAPIKey", "Bearer annals_revoked-or-never-issued", 401},
		{"TokenWithoutScope", "Bearer " + is.Token(tb, is.Claims("tester", others...)), 403},
		{"APIKeyWithoutScope", "Bearer " + wrongScopeKey, 403},
	}
}

// Route is one route to call: its method, a concrete path and a body, and the scope the test
// expects it to need (stated by the test, not read from the service's policy).
type Route struct {
	Method, Path, Body, Scope string
}

// Check calls every route with every bad case and requires the case's status, the standard
// error body, a WWW-Authenticate header and no change in rows (counted before and after,
// when rows is set); then calls each route with a key of each scope and requires that
// exactly the route's scope gets past authorization. routes must name the same routes as
// policy's protected ones, by their "METHOD /pattern" key.
func (is *Issuer) Check(t *testing.T, base string, policy auth.Policy, routes map[string]Route, rows func() int64) {
	t.Helper()
	var names []string
	for name, scope := range policy {
		if scope == auth.Public {
			continue
		}
		if _, ok := routes[name]; !ok {
			t.Errorf("no concrete request for route %s", name)
		}
		names = append(names, name)
	}
	for name := range routes {
		if _, ok := policy[name]; !ok {
			t.Errorf("route %s is not in the service's policy", name)
		}
	}
	sort.Strings(names)
	var before int64
	if rows != nil {
		before = rows()
	}
	for _, name := range names {
		rt := routes[name]
		for _, c := range is.BadCases(t, rt.Scope) {
			code, challenge, body := call(t, base, rt, c.Authorization)
			var env struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(body, &env)
			wantCode := "unauthorized"
			if c.Status == 403 {
				wantCode = "forbidden"
			}
			if code != c.Status || env.Error.Code != wantCode || env.Error.Message == "" || !strings.HasPrefix(challenge, "Bearer ") {
				t.Errorf("%s %s: got %d %s (WWW-Authenticate %q), want %d %s", name, c.Name, code, body, challenge, c.Status, wantCode)
			}
		}
	}
	if rows != nil {
		if after := rows(); after != before {
			t.Errorf("refused requests changed the rows: %d before, %d after", before, after)
		}
	}
	for _, name := range names {
		rt, need := routes[name], routes[name].Scope
		for _, sc := range auth.Scopes() {
			code, _, body := call(t, base, rt, "Bearer "+is.keys[sc])
			passed := code != http.StatusUnauthorized && code != http.StatusForbidden
			if passed != (sc == need) {
				t.Errorf("%s with a key of scope %s: %d %s (the route needs %s)", name, sc, code, body, need)
			}
		}
	}
}

func call(t *testing.T, base string, rt Route, authorization string) (int, string, []byte) {
	t.Helper()
	var body io.Reader
	if rt.Body != "" {
		body = strings.NewReader(rt.Body)
	}
	req, err := http.NewRequest(rt.Method, base+rt.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b
}

// Req is a Route that needs scope.
func Req(scope, method, path, body string) Route {
	return Route{Scope: scope, Method: method, Path: path, Body: body}
}

package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
)

// issuer is an OIDC issuer in the test: a key set served over HTTP that the test can change.
type issuer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []jose.JSONWebKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// publish adds the public half of key to the key set under kid.
func (is *issuer) publish(kid string, key any, alg jose.SignatureAlgorithm) {
	is.mu.Lock()
	defer is.mu.Unlock()
	var pub any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	}
	is.keys = append(is.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"})
}

const (
	iss = "https://issuer.test"
	aud = "annals"
)

type claims struct {
	jwt.Claims
	Scope string `json:"scope,omitempty"`
}

func sign(t *testing.T, key any, kid string, alg jose.SignatureAlgorithm, c claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func good(scope string) claims {
	now := time.Now()
	return claims{Claims: jwt.Claims{Issuer: iss, Subject: "svc-reporting", Audience: jwt.Audience{aud},
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute))}, Scope: scope}
}

// unsigned builds a token with alg none: header.payload. and an empty signature.
func unsigned(c claims) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": "rsa-1"})
	p, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

type fixture struct {
	url     string
	reg     *prometheus.Registry
	logs    *bytes.Buffer
	is      *issuer
	rsaKey  *rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
	readKey string // an API key with events:read only
}

func newFixture(t *testing.T, disabled bool) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, is: newIssuer(t)}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.is.publish("rsa-1", f.rsaKey, jose.RS256)
	f.is.publish("ec-1", f.ecKey, jose.ES256)
	var entry string
	f.readKey, entry, err = auth.NewAPIKey("reporting", auth.ScopeEventsRead)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseAPIKeys(entry)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(t.Context(), auth.Config{
		Disabled: disabled, APIKeys: keys,
		OIDC:       auth.OIDC{Issuer: iss, Audience: aud, JWKSURL: f.is.srv.URL},
		Registerer: f.reg,
		Logger:     slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	who := func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		httpx.WriteJSON(w, http.StatusOK, p)
	}
	r.HandleFunc("GET", "/open", httpx.Operation{}, who)
	r.HandleFunc("GET", "/events", httpx.Operation{}, who)
	r.HandleFunc("POST", "/commands", httpx.Operation{}, who)
	r.HandleFunc("GET", "/nobody", httpx.Operation{}, who)
	policy := auth.Policy{"GET /open": auth.Public, "GET /events": auth.ScopeEventsRead, "POST /commands": auth.ScopeCommands}
	srv := httptest.NewServer(a.Middleware(r, r.Pattern, policy))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

type answer struct {
	status    int
	challenge string
	body      httpx.ErrorBody
	principal auth.Principal
}

func (f *fixture) do(t *testing.T, method, path, authorization string) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	if a.status == http.StatusOK {
		_ = json.Unmarshal(raw, &a.principal)
	} else {
		var m struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(raw, &m)
		a.body.Error.Code, a.body.Error.Message = m.Error.Code, m.Error.Message
	}
	return a
}

func TestMiddleware_Refusals(t *testing.T) {
	f := newFixture(t, false)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	expired := good(auth.ScopeEventsRead)
	expired.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	expired.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
	expired.NotBefore = expired.IssuedAt
	early := good(auth.ScopeEventsRead)
	early.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
	wrongIss := good(auth.ScopeEventsRead)
	wrongIss.Issuer = "https://elsewhere.test"
	wrongAud := good(auth.ScopeEventsRead)
	wrongAud.Audience = jwt.Audience{"someone-else"}
	noExp := good(auth.ScopeEventsRead)
	noExp.Expiry = nil
	pubDER, err := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, auth, reason, code string
		status                   int
	}{
		{"NoHeader", "", auth.ReasonMissing, "unauthorized", 401},
		{"Basic", "Basic dXNlcjpwYXNz", auth.ReasonMalformed, "unauthorized", 401},
		{"EmptyBearer", "Bearer ", auth.ReasonMalformed, "unauthorized", 401},
		{"TwoWords", "Bearer a b", auth.ReasonMalformed, "unauthorized", 401},
		{"NotAJWT", "Bearer a.b.c", auth.ReasonMalformed, "unauthorized", 401},
		{"UnknownAPIKey", "Bearer annals_not-a-key", auth.ReasonUnknownKey, "unauthorized", 401},
		{"Expired", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, expired), auth.ReasonExpired, "unauthorized", 401},
		{"NotYetValid", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, early), auth.ReasonNotYetValid, "unauthorized", 401},
		{"WrongIssuer", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, wrongIss), auth.ReasonIssuer, "unauthorized", 401},
		{"WrongAudience", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, wrongAud), auth.ReasonAudience, "unauthorized", 401},
		{"NoExpiry", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, noExp), auth.ReasonMalformed, "unauthorized", 401},
		{"UnknownKid", "Bearer " + sign(t, other, "rsa-9", jose.RS256, good(auth.ScopeEventsRead)), auth.ReasonSignature, "unauthorized", 401},
		{"OtherKeyKnownKid", "Bearer " + sign(t, other, "rsa-1", jose.RS256, good(auth.ScopeEventsRead)), auth.ReasonSignature, "unauthorized", 401},
		{"AlgNone", "Bearer " + unsigned(good(auth.ScopeEventsRead)), auth.ReasonAlgorithm, "unauthorized", 401},
		// HMAC confusion: HS256 keyed with the issuer's public key, which anyone can read.
		{"HS256WithPublicKey", "Bearer " + sign(t, pubDER, "rsa-1", jose.HS256, good(auth.ScopeEventsRead)), auth.ReasonAlgorithm, "unauthorized", 401},
		{"RS384NotAllowed", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS384, good(auth.ScopeEventsRead)), auth.ReasonAlgorithm, "unauthorized", 401},
		{"TokenWithoutScope", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, good(auth.ScopeCommands)), auth.ReasonScope, "forbidden", 403},
		{"KeyWithoutScope", "Bearer " + f.readKey, auth.ReasonScope, "forbidden", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/events"
			if tc.status == 403 && strings.HasPrefix(tc.name, "Key") {
				path = "/commands"
			}
			method := "GET"
			if path == "/commands" {
				method = "POST"
			}
			before := testutil.ToFloat64(failures(t, f.reg, tc.reason))
			got := f.do(t, method, path, tc.auth)
			if got.status != tc.status || got.body.Error.Code != tc.code {
				t.Errorf("got %d %q (%s), want %d %q", got.status, got.body.Error.Code, got.body.Error.Message, tc.status, tc.code)
			}
			if !strings.HasPrefix(got.challenge, "Bearer ") {
				t.Errorf("WWW-Authenticate = %q", got.challenge)
			}
			if after := testutil.ToFloat64(failures(t, f.reg, tc.reason)); after != before+1 {
				t.Errorf("annals_auth_failures_total{reason=%q} went from %v to %v", tc.reason, before, after)
			}
			if cred := strings.TrimPrefix(tc.auth, "Bearer "); len(cred) > 8 && strings.Contains(got.body.Error.Message, cred) {
				t.Errorf("the message quotes the credentials: %q", got.body.Error.Message)
			}
		})
	}
	// No credential reaches a log line or the metrics.
	out, err := testutil.CollectAndFormat(f.reg, expfmt.TypeTextPlain, "annals_auth_failures_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{f.logs.String(), string(out)} {
		if strings.Contains(text, f.readKey) || strings.Contains(text, "eyJ") || strings.Contains(text, "annals_not-a-key") {
			t.Errorf("a credential leaked:\n%s", text)
		}
	}
}

// failures is the counter of one reason, found by gathering the registry.
func failures(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "annals_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no annals_auth_failures_total{reason=%q}", reason)
	return nil
}

func TestMiddleware_Accepts(t *testing.T) {
	f := newFixture(t, false)
	for _, tc := range []struct {
		name, auth string
		want       auth.Principal
	}{
		{"RS256", "Bearer " + sign(t, f.rsaKey, "rsa-1", jose.RS256, good("openid events:read unknown")),
			auth.Principal{Kind: auth.KindToken, Name: "svc-reporting", Issuer: iss, Scopes: []string{auth.ScopeEventsRead}}},
		{"ES256", "Bearer " + sign(t, f.ecKey, "ec-1", jose.ES256, good(auth.ScopeEventsRead)),
			auth.Principal{Kind: auth.KindToken, Name: "svc-reporting", Issuer: iss, Scopes: []string{auth.ScopeEventsRead}}},
		{"APIKey", "Bearer " + f.readKey, auth.Principal{Kind: auth.KindAPIKey, Name: "reporting", Scopes: []string{auth.ScopeEventsRead}}},
		{"LowerCaseScheme", "bearer " + f.readKey, auth.Principal{Kind: auth.KindAPIKey, Name: "reporting", Scopes: []string{auth.ScopeEventsRead}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.do(t, "GET", "/events", tc.auth)
			if got.status != http.StatusOK {
				t.Fatalf("got %d %s", got.status, got.body.Error.Message)
			}
			if g, w := mustJSON(got.principal), mustJSON(tc.want); g != w {
				t.Errorf("principal %s, want %s", g, w)
			}
		})
	}
	t.Run("Public", func(t *testing.T) {
		if got := f.do(t, "GET", "/open", ""); got.status != http.StatusOK {
			t.Errorf("public route: %d", got.status)
		}
	})
	t.Run("RouteWithoutPolicy", func(t *testing.T) {
		if got := f.do(t, "GET", "/nobody", "Bearer "+f.readKey); got.status != http.StatusForbidden {
			t.Errorf("route without a policy: %d", got.status)
		}
	})
	t.Run("UnknownRoute", func(t *testing.T) {
		if got := f.do(t, "GET", "/nowhere", ""); got.status != http.StatusNotFound {
			t.Errorf("unknown route without credentials: %d, want the router's 404", got.status)
		}
	})
}

// A key the issuer rotates in is picked up by the first token that names it, and a key it
// removes stops verifying once the key set is fetched again.
func TestMiddleware_KeyRotation(t *testing.T) {
	f := newFixture(t, false)
	if got := f.do(t, "GET", "/events", "Bearer "+sign(t, f.rsaKey, "rsa-1", jose.RS256, good(auth.ScopeEventsRead))); got.status != http.StatusOK {
		t.Fatalf("before rotation: %d", got.status)
	}
	next, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, next, "rsa-2", jose.RS256, good(auth.ScopeEventsRead))
	if got := f.do(t, "GET", "/events", "Bearer "+tok); got.status != http.StatusUnauthorized {
		t.Fatalf("a key not yet published: %d", got.status)
	}
	f.is.mu.Lock()
	f.is.keys = nil // the old keys retire
	f.is.mu.Unlock()
	f.is.publish("rsa-2", next, jose.RS256)
	// go-oidc answers the requests waiting on a fetch just before it installs the fetched set
	// in its cache, and a request that finds a fetch in flight waits for its answer: the fetch
	// the unpublished key started may still be the one in flight, with the old set. So the
	// new key verifies, and the retired one stops verifying, within a fetch or two: poll, with
	// a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := f.do(t, "GET", "/events", "Bearer "+tok)
		if got.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation: %d %s", got.status, got.body.Error.Message)
		}
		time.Sleep(10 * time.Millisecond)
	}
	retired := sign(t, f.rsaKey, "rsa-1", jose.RS256, good(auth.ScopeEventsRead))
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := f.do(t, "GET", "/events", "Bearer "+retired)
		if got.status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a retired key still verifies: %d", got.status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMiddleware_Disabled(t *testing.T) {
	f := newFixture(t, true)
	got := f.do(t, "POST", "/commands", "")
	if got.status != http.StatusOK || got.principal.Kind != auth.KindAnonymous || !got.principal.Has(auth.ScopePersonalData) {
		t.Errorf("disabled: %d %+v", got.status, got.principal)
	}
}

func TestParseAPIKeys(t *testing.T) {
	h := auth.HashKey("k")
	keys, err := auth.ParseAPIKeys(" ci:commands+events:read:" + h + ", ops:audit:read:" + strings.ToUpper(h))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Name != "ci" || len(keys[0].Scopes) != 2 || keys[1].Scopes[0] != auth.ScopeAuditRead {
		t.Errorf("got %+v", keys)
	}
	for _, bad := range []string{"ci", "ci:commands", "ci:root:" + h, "ci:commands:abc", "c i:commands:" + h,
		"ci:commands:" + h + ",ci:commands:" + h, "ci::" + h} {
		if _, err := auth.ParseAPIKeys(bad); err == nil {
			t.Errorf("ParseAPIKeys(%q) accepted", bad)
		} else if strings.Contains(err.Error(), h) {
			t.Errorf("the error quotes the hash: %v", err)
		}
	}
}

func TestOIDC_Validate(t *testing.T) {
	for _, algs := range [][]string{{"none"}, {"HS256"}, {"RS256", "HS512"}} {
		o := auth.OIDC{Issuer: iss, Audience: aud, Algorithms: algs}
		if err := o.Validate(); err == nil {
			t.Errorf("algorithms %v accepted", algs)
		}
	}
	o := auth.OIDC{Issuer: iss}
	if err := o.Validate(); err == nil {
		t.Error("an issuer without an audience accepted")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// The tests' key (internal/testenv) has every scope.
func TestTestenvKeyScopes(t *testing.T) {
	if got, want := testenv.APIScopes, strings.Join(auth.Scopes(), "+"); got != want {
		t.Errorf("testenv.APIScopes = %q, want %q", got, want)
	}
	if want := "test:" + testenv.APIScopes + ":" + auth.HashKey(testenv.APIKey); testenv.APIKeys != want {
		t.Errorf("testenv.APIKeys = %q, want %q", testenv.APIKeys, want)
	}
}

// The local stack's key (scripts/stack.sh) has every scope.
func TestStackKeyScopes(t *testing.T) {
	b, err := os.ReadFile("../../scripts/stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^API_SCOPES="([^"]*)"$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/stack.sh sets no API_SCOPES")
	}
	if got, want := string(m[1]), strings.Join(auth.Scopes(), "+"); got != want {
		t.Errorf("scripts/stack.sh API_SCOPES = %q, want %q", got, want)
	}
}

package auth_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
)

// dex is a real OpenID Connect provider, Dex, run by the test on a free loopback port with an
// in-memory store: one static client and one user whose groups carry Annals scopes.
type dex struct {
	bin, dir, addr string
	cmd            *exec.Cmd
}

const (
	dexClient   = "annals"
	dexSecret   = "annals-test-client-secret"
	dexUser     = "reader@example.com"
	dexPassword = "correct horse battery staple"
)

func startDex(t *testing.T) *dex {
	t.Helper()
	bin := os.Getenv("DEX_BIN")
	if bin == "" {
		if testing.Short() {
			t.Skip("DEX_BIN is not set (scripts/stack.sh install dex; eval \"$(scripts/stack.sh env)\")")
		}
		t.Fatal("DEX_BIN is not set: scripts/stack.sh install dex builds Dex, and scripts/stack.sh env names it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte(dexPassword), bcrypt.DefaultCost) // Dex refuses lower costs
	if err != nil {
		t.Fatal(err)
	}
	d := &dex{bin: bin, dir: t.TempDir(), addr: addr}
	config := fmt.Sprintf(`issuer: http://%[1]s/dex
storage:
  type: memory
web:
  http: %[1]s
oauth2:
  passwordConnector: local
  skipApprovalScreen: true
enablePasswordDB: true
staticClients:
- id: %[2]s
  secret: %[3]s
  name: Annals
  redirectURIs: ["http://127.0.0.1/callback"]
staticPasswords:
- email: %[4]s
  hash: %[5]q
  username: reader
  userID: 0190a4b2-7f3c-7a00-8000-00000000d3e1
  groups: ["events:read", "personal-data", "not-a-scope"]
`, addr, dexClient, dexSecret, dexUser, string(hash))
	if err := os.WriteFile(filepath.Join(d.dir, "config.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(d.stop)
	return d
}

func (d *dex) issuer() string { return "http://" + d.addr + "/dex" }

// start runs Dex and waits for its discovery document. Each start has new signing keys: they
// live in the in-memory store.
func (d *dex) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(d.dir, "dex.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(d.bin, "serve", filepath.Join(d.dir, "config.yaml"))
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.issuer() + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.dir, "dex.log"))
			t.Fatalf("Dex did not start on %s within 30 s:\n%s", d.addr, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *dex) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		d.cmd = nil
	}
}

// token logs the user in with the password grant and returns the ID token, a JWT signed by
// Dex whose aud is the client and whose groups claim holds the user's groups.
func (d *dex) token(t *testing.T) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {dexUser}, "password": {dexPassword},
		"scope": {"openid groups"}}
	req, err := http.NewRequest(http.MethodPost, d.issuer()+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(dexClient, dexSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken     string `json:"id_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.IDToken == "" {
		t.Fatalf("Dex token: %d %q %q %v", resp.StatusCode, body.Error, body.Description, err)
	}
	return body.IDToken
}

// Tokens of a real provider, found by discovery: accepted with the scopes of their groups
// claim, refused on a route that needs another scope, and still accepted after the provider
// starts signing with new keys, while tokens of the retired keys are refused.
func TestMiddleware_Dex(t *testing.T) {
	d := startDex(t)
	a, err := auth.New(t.Context(), auth.Config{OIDC: auth.OIDC{Issuer: d.issuer(), Audience: dexClient, ScopesClaim: "groups"}})
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	who := func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		httpx.WriteJSON(w, http.StatusOK, p)
	}
	r.HandleFunc("GET", "/events", httpx.Operation{}, who)
	r.HandleFunc("POST", "/commands", httpx.Operation{}, who)
	srv := httptest.NewServer(a.Middleware(r, r.Pattern, auth.Policy{"GET /events": auth.ScopeEventsRead, "POST /commands": auth.ScopeCommands}))
	defer srv.Close()
	call := func(method, path, token string) (int, auth.Principal) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p auth.Principal
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}

	first := d.token(t)
	code, p := call("GET", "/events", first)
	if code != http.StatusOK {
		t.Fatalf("GET /events with a Dex token: %d", code)
	}
	if p.Kind != auth.KindToken || p.Issuer != d.issuer() || p.Name == "" ||
		strings.Join(p.Scopes, " ") != auth.ScopeEventsRead+" "+auth.ScopePersonalData {
		t.Errorf("principal %+v", p)
	}
	if code, _ := call("POST", "/commands", first); code != http.StatusForbidden {
		t.Errorf("POST /commands without the commands scope: %d, want 403", code)
	}
	if code, _ := call("GET", "/events", first[:len(first)-4]+"AAAA"); code != http.StatusUnauthorized {
		t.Errorf("a Dex token with a damaged signature: %d, want 401", code)
	}

	// Rotation: Dex starts again with new keys (its store is in memory).
	d.stop()
	d.start(t)
	second := d.token(t)
	if kid(t, first) == kid(t, second) {
		t.Fatalf("Dex signed with the same key id %q after a restart", kid(t, first))
	}
	if code, _ := call("GET", "/events", second); code != http.StatusOK {
		t.Errorf("a token of the new key: %d, want 200 once the key set is fetched again", code)
	}
	// go-oidc answers the requests waiting on a fetch just before it installs the fetched set
	// in its cache, so the retired key may verify once more in between: poll, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := call("GET", "/events", first)
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of the retired key: %d, want 401", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func kid(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	b, err := base64RawURL(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

package secure_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
)

// TestSecure_PostgresRefused: a service whose transport settings the TLS-only PostgreSQL
// refuses stops at start, within seconds, with one line naming the setting at fault and what
// it expected, and never the password: a client without TLS, and a CA file of another
// authority, each from DATABASE_URL and from the EVENT_STORE_* keys.
func TestSecure_PostgresRefused(t *testing.T) {
	cfg := secureConfig(t)
	if !strings.Contains(cfg.EventStore.ConnString(), "sslmode=verify-full") {
		t.Skip("DATABASE_URL does not ask for sslmode=verify-full: not the secured stack's PostgreSQL")
	}
	tlsDir := os.Getenv("ANNALS_SECURE_TLS_DIR")
	if tlsDir == "" {
		t.Fatal("ANNALS_SECURE_TLS_DIR is not set (ANNALS_SECURE=1 scripts/stack.sh env exports it)")
	}
	password := cfg.EventStore.Password.Reveal()
	withURL := func(t *testing.T, set func(q url.Values)) string {
		t.Helper()
		u, err := url.Parse(cfg.EventStore.ConnString())
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		set(q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		says []string
	}{
		{
			name: "WithoutTLS",
			env:  map[string]string{"DATABASE_URL": withURL(t, func(q url.Values) { q.Set("sslmode", "disable"); q.Del("sslrootcert") })},
			says: []string{"requires TLS", "sslmode=disable in DATABASE_URL", "verify-full"},
		},
		{
			name: "WithoutTLSFromTheParts",
			env:  map[string]string{"DATABASE_URL": "", "EVENT_STORE_SSLMODE": "disable", "EVENT_STORE_SSLROOTCERT": ""},
			says: []string{"requires TLS", "EVENT_STORE_SSLMODE=disable"},
		},
		{
			name: "UntrustedCA",
			env: map[string]string{"DATABASE_URL": withURL(t, func(q url.Values) {
				q.Set("sslrootcert", tlsDir+"/untrusted-ca.crt")
			})},
			says: []string{"not trusted by sslrootcert=" + tlsDir + "/untrusted-ca.crt in DATABASE_URL", "the CA that signs"},
		},
		{
			name: "UntrustedCAFromTheParts",
			env:  map[string]string{"DATABASE_URL": "", "EVENT_STORE_SSLROOTCERT": tlsDir + "/untrusted-ca.crt"},
			says: []string{"not trusted by EVENT_STORE_SSLROOTCERT=" + tlsDir + "/untrusted-ca.crt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HTTP_ADDR": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			lookup := func(k string) (string, bool) {
				if v, ok := env[k]; ok {
					return v, v != ""
				}
				return os.LookupEnv(k)
			}
			var stderr bytes.Buffer
			m, err := app.New(app.Projector, nil, lookup, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err = m.Open(ctx)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Open took %s, want a few seconds", took)
			}
			if err == nil {
				t.Fatal("Open accepted settings the server refuses")
			}
			msg := err.Error()
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("got %q, want it to say %q", msg, s)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("the error has more than one line: %q", msg)
			}
			if strings.Contains(msg, password) {
				t.Errorf("the error shows the password: %q", msg)
			}
		})
	}
}

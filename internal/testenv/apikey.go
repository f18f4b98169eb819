package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// APIKey is the tests' API key (a test key, never a deployment's); APIKeys is the API_KEYS
// entry that gives it every scope, for the services the tests start.
const APIKey = "annals_test-key-with-every-scope-0123456789"

// APIScopes are every scope of internal/auth, as API_KEYS joins them (testenv cannot import
// internal/auth, which sits above the library's packages whose tests use testenv; a test of
// internal/auth keeps this list true).
const APIScopes = "commands+events:read+read-models:read+notifications:read+audit:read+personal-data+users:erase"

// APIKeys is the API_KEYS setting that accepts APIKey, named "test", with every scope.
var APIKeys = "test:" + APIScopes + ":" + func() string {
	h := sha256.Sum256([]byte(APIKey))
	return hex.EncodeToString(h[:])
}()

// Authorize makes r carry APIKey.
func Authorize(r *http.Request) { r.Header.Set("Authorization", "Bearer "+APIKey) }

// Client is an HTTP client whose every request carries APIKey, unless it has an
// Authorization header of its own.
var Client = &http.Client{Transport: Authorizing(http.DefaultTransport)}

// Authorizing wraps next so that every request carries APIKey, unless it has an
// Authorization header of its own.
func Authorizing(next http.RoundTripper) http.RoundTripper { return authorizing{next} }

type authorizing struct{ next http.RoundTripper }

func (a authorizing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		Authorize(r)
	}
	return a.next.RoundTrip(r)
}

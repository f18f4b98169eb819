package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// APIKey is a static key as the configuration holds it: a name, its scopes and the SHA-256
// of the key itself, never the key.
type APIKey struct {
	Name   string
	Scopes []string
	Hash   [sha256.Size]byte
}

// APIKeyPrefix starts every key NewAPIKey makes, so that one is recognised in a leak scan.
const APIKeyPrefix = "annals_"

var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseAPIKeys reads API_KEYS: comma-separated entries name:scope+scope:sha256hex, where name
// is 1 to 64 letters, digits, '.', '_' or '-', the scopes are among Scopes (at least one), and
// the last part is the lowercase or uppercase hex SHA-256 of the key. Empty text is no key.
// Errors name the entry by its position and name, never quoting a hash.
func ParseAPIKeys(s string) ([]APIKey, error) {
	var keys []APIKey
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		// Scopes may hold ':' (events:read); the name and the hash never do.
		name, rest, ok1 := strings.Cut(entry, ":")
		i2 := strings.LastIndexByte(rest, ':')
		if !ok1 || i2 < 0 {
			return nil, fmt.Errorf("API key %d: want name:scope+scope:sha256hex", i+1)
		}
		scopes, hash := rest[:i2], rest[i2+1:]
		if !keyName.MatchString(name) {
			return nil, fmt.Errorf("API key %d: the name must be 1 to 64 letters, digits, '.', '_' or '-'", i+1)
		}
		if seen[name] {
			return nil, fmt.Errorf("API key %s: named twice", name)
		}
		seen[name] = true
		k := APIKey{Name: name}
		for _, sc := range strings.Split(scopes, "+") {
			if !KnownScope(sc) {
				return nil, fmt.Errorf("API key %s: unknown scope %q (known: %s)", name, sc, strings.Join(Scopes(), ", "))
			}
			k.Scopes = append(k.Scopes, sc)
		}
		b, err := hex.DecodeString(hash)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("API key %s: the hash must be 64 hex digits (the SHA-256 of the key)", name)
		}
		copy(k.Hash[:], b)
		keys = append(keys, k)
	}
	return keys, nil
}

// HashKey is the SHA-256 of a key, in hex: what API_KEYS stores.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// NewAPIKey makes a key of 32 random bytes and its API_KEYS entry for name and scopes.
func NewAPIKey(name string, scopes ...string) (key, entry string, err error) {
	if !keyName.MatchString(name) {
		return "", "", errors.New("the name must be 1 to 64 letters, digits, '.', '_' or '-'")
	}
	for _, sc := range scopes {
		if !KnownScope(sc) {
			return "", "", fmt.Errorf("unknown scope %q", sc)
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, name + ":" + strings.Join(scopes, "+") + ":" + HashKey(key), nil
}

// lookupKey finds the key whose hash is the hash of presented. Every key is compared, in
// constant time, whether or not an earlier one matched.
func lookupKey(keys []APIKey, presented string) (APIKey, bool) {
	h := sha256.Sum256([]byte(presented))
	var found APIKey
	ok := 0
	for _, k := range keys {
		if subtle.ConstantTimeCompare(h[:], k.Hash[:]) == 1 {
			found, ok = k, 1
		}
	}
	return found, ok == 1
}

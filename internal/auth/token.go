package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultAlgorithms are the signature algorithms a token may use unless OIDC_ALGORITHMS says
// otherwise.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// asymmetric are the algorithms OIDC_ALGORITHMS may name: never "none", never HS*.
var asymmetric = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

// Leeway is the clock skew allowed on exp, nbf and iat.
const Leeway = 30 * time.Second

// OIDC configures the verification of bearer tokens. Issuer empty: tokens are not accepted.
type OIDC struct {
	// Issuer is the exact iss a token must carry; its discovery document
	// (<issuer>/.well-known/openid-configuration) names the key set unless JWKSURL does.
	Issuer string
	// Audience is a value the token's aud must contain. Required with Issuer.
	Audience string
	// JWKSURL is the issuer's key set; empty: found by discovery, on the first token.
	JWKSURL string
	// Algorithms are the signature algorithms accepted (DefaultAlgorithms when empty); only
	// asymmetric ones are allowed.
	Algorithms []string
	// ScopesClaim names the claim that carries the token's scopes, a space-separated string
	// or an array of strings ("scope" when empty). Values that are not scopes of Scopes are
	// ignored.
	ScopesClaim string
	// HTTPClient fetches discovery and keys (one with a 10 s timeout when nil).
	HTTPClient *http.Client
}

// Validate checks c and fills its defaults.
func (c *OIDC) Validate() error {
	if c.Issuer == "" {
		return nil
	}
	if c.Audience == "" {
		return errors.New("OIDC_AUDIENCE is required with OIDC_ISSUER")
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	for _, a := range c.Algorithms {
		if _, ok := asymmetric[a]; !ok {
			return fmt.Errorf("OIDC_ALGORITHMS: %q is not an asymmetric JWS algorithm (RS256, ES256, PS256, EdDSA, ...)", a)
		}
	}
	if c.ScopesClaim == "" {
		c.ScopesClaim = "scope"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return nil
}

// verifier checks tokens of one issuer. The key set is go-oidc's remote key set: cached, and
// fetched again when a token names a key id it does not hold, so a key the issuer rotates in
// is picked up by the first token signed with it.
type verifier struct {
	cfg  OIDC
	algs []jose.SignatureAlgorithm
	ctx  context.Context // for the key set's fetches

	mu   sync.Mutex
	keys oidc.KeySet
}

func newVerifier(ctx context.Context, cfg OIDC) *verifier {
	v := &verifier{cfg: cfg, ctx: oidc.ClientContext(context.WithoutCancel(ctx), cfg.HTTPClient)}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, asymmetric[a])
	}
	if cfg.JWKSURL != "" {
		v.keys = oidc.NewRemoteKeySet(v.ctx, cfg.JWKSURL)
	}
	return v
}

// keySet returns the key set, found by discovery the first time it is needed; a failed
// discovery is tried again by the next token.
func (v *verifier) keySet(ctx context.Context) (oidc.KeySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil {
		return v.keys, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.cfg.HTTPClient), v.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery of %s: %w", v.cfg.Issuer, err)
	}
	var doc struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKSURL == "" {
		return nil, fmt.Errorf("discovery of %s names no jwks_uri", v.cfg.Issuer)
	}
	v.keys = oidc.NewRemoteKeySet(v.ctx, doc.JWKSURL)
	return v.keys, nil
}

// claims are the parts of a token's payload the verifier reads.
type claims struct {
	jwt.Claims
	raw map[string]json.RawMessage
}

// verify checks token and returns its principal, or a *Failure.
func (v *verifier) verify(ctx context.Context, token string) (Principal, error) {
	alg, err := headerAlg(token)
	if err != nil {
		return Principal{}, fail(ReasonMalformed, "the bearer token is not a JWT")
	}
	if !slices.Contains(v.cfg.Algorithms, alg) { // "none", HS256 and every other not configured
		return Principal{}, fail(ReasonAlgorithm, "the token's algorithm is not accepted")
	}
	if _, err := jose.ParseSigned(token, v.algs); err != nil {
		return Principal{}, fail(ReasonMalformed, "the bearer token is not a JWT")
	}
	keys, err := v.keySet(ctx)
	if err != nil {
		return Principal{}, &Failure{Reason: ReasonKeysUnavailable, Message: "the token issuer's keys cannot be fetched; retry later", err: err}
	}
	payload, err := keys.VerifySignature(ctx, token)
	if err != nil {
		if strings.HasPrefix(err.Error(), "fetching keys") {
			return Principal{}, &Failure{Reason: ReasonKeysUnavailable, Message: "the token issuer's keys cannot be fetched; retry later", err: err}
		}
		return Principal{}, fail(ReasonSignature, "the token's signature does not verify with any key of the issuer")
	}
	var c claims
	if err := json.Unmarshal(payload, &c.Claims); err != nil {
		return Principal{}, fail(ReasonMalformed, "the token's claims are malformed")
	}
	if err := json.Unmarshal(payload, &c.raw); err != nil {
		return Principal{}, fail(ReasonMalformed, "the token's claims are malformed")
	}
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: time.Now()}, Leeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Principal{}, fail(ReasonIssuer, "the token is from another issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Principal{}, fail(ReasonAudience, "the token is for another audience")
	case errors.Is(err, jwt.ErrExpired):
		return Principal{}, fail(ReasonExpired, "the token has expired")
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Principal{}, fail(ReasonNotYetValid, "the token is not valid yet")
	case err != nil:
		return Principal{}, fail(ReasonMalformed, "the token's claims are not valid")
	case c.Expiry == nil:
		return Principal{}, fail(ReasonMalformed, "the token has no expiry (exp)")
	case c.Subject == "":
		return Principal{}, fail(ReasonMalformed, "the token has no subject (sub)")
	}
	return Principal{Kind: KindToken, Name: c.Subject, Issuer: c.Issuer, Scopes: scopesOf(c.raw[v.cfg.ScopesClaim])}, nil
}

// headerAlg reads the alg of a compact JWS's protected header, to tell an algorithm that is
// refused from a token that is not a JWT at all.
func headerAlg(token string) (string, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", err
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", err
	}
	return h.Alg, nil
}

// scopesOf reads a scopes claim: a space-separated string or an array of strings; only known
// scopes count.
func scopesOf(raw json.RawMessage) []string {
	var list []string
	var s string
	if json.Unmarshal(raw, &s) == nil {
		list = strings.Fields(s)
	} else {
		_ = json.Unmarshal(raw, &list)
	}
	var out []string
	for _, sc := range list {
		if KnownScope(sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/httpx"
)

// Reasons of a refused request: the values of annals_auth_failures_total's reason label.
const (
	ReasonMissing         = "missing"          // no Authorization header
	ReasonMalformed       = "malformed"        // not "Bearer <credentials>", or a token that is not a well-formed JWT
	ReasonUnknownKey      = "unknown_key"      // an API key that is not (or no longer) configured
	ReasonAlgorithm       = "algorithm"        // alg none, HS*, or another algorithm not allowed
	ReasonSignature       = "signature"        // an unknown key id, or a signature no key of the issuer verifies
	ReasonIssuer          = "issuer"           // iss is not OIDC_ISSUER
	ReasonAudience        = "audience"         // aud does not contain OIDC_AUDIENCE
	ReasonExpired         = "expired"          // exp has passed
	ReasonNotYetValid     = "not_yet_valid"    // nbf (or iat) is in the future
	ReasonTokensOff       = "tokens_off"       // a JWT, but no OIDC_ISSUER is configured
	ReasonKeysUnavailable = "keys_unavailable" // the issuer's discovery or keys cannot be fetched (503)
	ReasonScope           = "scope"            // authenticated, without the route's scope (403)
)

func reasons() []string {
	return []string{ReasonMissing, ReasonMalformed, ReasonUnknownKey, ReasonAlgorithm, ReasonSignature, ReasonIssuer,
		ReasonAudience, ReasonExpired, ReasonNotYetValid, ReasonTokensOff, ReasonKeysUnavailable, ReasonScope}
}

// Failure is a refused request: its reason and the message the client sees (never the
// credentials). It is httpx.ErrUnauthorized (401), httpx.ErrForbidden (403, ReasonScope) or,
// when the issuer's keys cannot be fetched, a 503.
type Failure struct {
	Reason  string
	Message string
	Scope   string // the scope the route needs (ReasonScope)
	err     error  // the cause, for the server's log only
}

func fail(reason, msg string) *Failure { return &Failure{Reason: reason, Message: msg} }

func (f *Failure) Error() string { return f.Message }

// Unwrap makes errors.Is(f, httpx.ErrUnauthorized) or httpx.ErrForbidden hold.
func (f *Failure) Unwrap() error {
	switch f.Reason {
	case ReasonScope:
		return httpx.ErrForbidden
	case ReasonKeysUnavailable:
		return errUnavailable
	}
	return httpx.ErrUnauthorized
}

var errUnavailable = errors.New("identity provider unavailable")

// errorRules map a *Failure to its problem through the shared table.
var errorRules = []httpx.Rule{
	httpx.Is(errUnavailable, httpx.Problem{Status: http.StatusServiceUnavailable, Code: httpx.CodeUnavailable}),
}

// Config configures an Authenticator.
type Config struct {
	// Disabled turns authentication off: every request is served as an anonymous principal
	// with every scope. For local experiments only; New's caller logs a warning.
	Disabled bool
	// APIKeys are the static keys accepted (ParseAPIKeys reads API_KEYS).
	APIKeys []APIKey
	// OIDC configures bearer tokens; an empty Issuer accepts none.
	OIDC OIDC
	// Registerer receives annals_auth_failures_total (none when nil).
	Registerer prometheus.Registerer
	// Logger receives refusals at debug level and failures to reach the issuer at warn level
	// (slog.Default when nil), never a credential.
	Logger *slog.Logger
}

// Authenticator authenticates requests and enforces a Policy.
type Authenticator struct {
	cfg      Config
	verifier *verifier
	failures *prometheus.CounterVec
	errs     httpx.Errors
	log      *slog.Logger
}

// New returns the Authenticator of cfg. ctx bounds the background fetches of the issuer's
// keys.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if err := cfg.OIDC.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.errs = httpx.Errors{Dependency: "the identity provider", Rules: errorRules, Logger: a.log}
	if cfg.OIDC.Issuer != "" {
		a.verifier = newVerifier(ctx, cfg.OIDC)
	}
	a.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "annals_auth_failures_total",
		Help: "Requests refused by authentication (401), authorization (403) or an unreachable identity provider (503), by reason.",
	}, []string{"reason"})
	for _, r := range reasons() {
		a.failures.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.failures); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Accepts reports whether any credential can pass: authentication is off, or an API key or an
// issuer is configured.
func (a *Authenticator) Accepts() bool {
	return a.cfg.Disabled || len(a.cfg.APIKeys) > 0 || a.verifier != nil
}

// Authenticate returns the principal of r's Authorization header, or a *Failure.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if a.cfg.Disabled {
		return Principal{Kind: KindAnonymous, Name: KindAnonymous, Scopes: Scopes()}, nil
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return Principal{}, fail(ReasonMissing, "authentication required: send Authorization: Bearer <API key or token>")
	}
	scheme, cred, ok := strings.Cut(values[0], " ")
	cred = strings.TrimSpace(cred)
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" || strings.ContainsAny(cred, " \t") {
		return Principal{}, fail(ReasonMalformed, "the Authorization header must be one \"Bearer <API key or token>\"")
	}
	if strings.Count(cred, ".") == 2 { // a compact JWS
		if a.verifier == nil {
			return Principal{}, fail(ReasonTokensOff, "bearer tokens are not accepted here (no OIDC issuer is configured)")
		}
		return a.verifier.verify(r.Context(), cred)
	}
	k, ok := lookupKey(a.cfg.APIKeys, cred)
	if !ok {
		return Principal{}, fail(ReasonUnknownKey, "the API key is not valid")
	}
	return Principal{Kind: KindAPIKey, Name: k.Name, Scopes: k.Scopes}, nil
}

// Public marks a route of a Policy that needs no credentials.
const Public = "public"

// Policy names what each route needs: a scope, or Public. Its keys are the routes as an
// httpx.Router lists them, "METHOD /path".
type Policy map[string]string

// Middleware enforces policy in front of next. route names the route a request matches
// ("METHOD /path", as the Policy's keys; "" when none does, as httpx.Router.Pattern). A route
// without an entry is refused (403): a route nobody gave a scope is reachable by nobody. A
// request that matches no route goes on to the router's 404 or 405 without credentials: the
// routes are no secret (the public /openapi.json lists them).
func (a *Authenticator) Middleware(next http.Handler, route func(*http.Request) string, policy Policy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern := route(r)
		need, known := policy[pattern]
		if need == Public || pattern == "" {
			next.ServeHTTP(w, r)
			return
		}
		p, err := a.Authenticate(r)
		if err == nil && (!known || !p.Has(need)) {
			err = &Failure{Reason: ReasonScope, Scope: need, Message: "the credentials lack the scope this route needs: " + need}
			if !known {
				err = &Failure{Reason: ReasonScope, Message: "no scope opens this route"}
			}
		}
		if err != nil {
			r.Pattern = pattern // what the router would have set: the request metrics read it
			a.refuse(w, r, err)
			return
		}
		inner := r.WithContext(WithPrincipal(r.Context(), p))
		next.ServeHTTP(w, inner)
		r.Pattern = inner.Pattern // the router sets it on the request it serves
	})
}

// refuse answers a refused request: the reason counted, WWW-Authenticate set, the problem
// written through the error table.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var f *Failure
	if !errors.As(err, &f) {
		a.errs.Write(w, r, err)
		return
	}
	a.failures.WithLabelValues(f.Reason).Inc()
	switch f.Reason {
	case ReasonMissing:
		w.Header().Set("WWW-Authenticate", `Bearer realm="annals"`)
	case ReasonScope:
		if f.Scope != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="annals", error="insufficient_scope", scope="`+f.Scope+`"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="annals", error="insufficient_scope"`)
		}
	case ReasonMalformed:
		w.Header().Set("WWW-Authenticate", `Bearer realm="annals", error="invalid_request"`)
	case ReasonKeysUnavailable:
		a.log.Warn("token issuer unreachable", "issuer", a.cfg.OIDC.Issuer, "error", f.err)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="annals", error="invalid_token"`)
	}
	a.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused", slog.String("reason", f.Reason),
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
	a.errs.Write(w, r, err)
}

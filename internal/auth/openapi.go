package auth

import (
	"strings"

	"github.com/annals-dev/annals/internal/httpx"
)

// The security schemes of the services' OpenAPI documents.
const (
	// SchemeBearer is the HTTP bearer scheme: an API key or a token in
	// Authorization: Bearer <credentials>. Every protected operation names it with its scope.
	SchemeBearer = "bearer"
	// SchemeOIDC is the OpenID Connect scheme, declared when tokens are verified through the
	// issuer's discovery document (OIDC_ISSUER without OIDC_JWKS_URL): where a client finds
	// the issuer that signs the tokens. It is an alternative to SchemeBearer, with the same
	// scope.
	SchemeOIDC = "oidc"
)

// scopeText says what each scope opens, for the bearer scheme's description.
var scopeText = map[string]string{
	ScopeCommands:          "the writer's commands",
	ScopeEventsRead:        "the writer's reads of the event store and the schema catalog",
	ScopeReadModelsRead:    "the projector's read models",
	ScopeNotificationsRead: "the notifier's sent log",
	ScopeAuditRead:         "the auditor's audit log and its verification",
	ScopePersonalData:      "no route by itself: emails and names unredacted in what the other scopes show",
	ScopeUsersErase:        "the writer's erasure of a user's personal data",
}

// Security is what a enforces on the routes of policy, as the service's OpenAPI document
// says it: the bearer scheme (and the OpenID Connect scheme, see SchemeOIDC), the scope each
// protected route needs, security: [] on the public ones, and the 401 and 403 (and, with
// tokens, 503) a protected route may answer. With authentication off (Config.Disabled) every
// route is public and the document declares no scheme: that is what the server enforces then.
func (a *Authenticator) Security(policy Policy) httpx.Security {
	sec := httpx.Security{Requirements: make(map[string][]map[string][]string, len(policy))}
	if a.cfg.Disabled {
		for route := range policy {
			sec.Requirements[route] = []map[string][]string{}
		}
		return sec
	}
	oidc := a.verifier != nil && a.cfg.OIDC.JWKSURL == ""
	for route, need := range policy {
		if need == Public {
			sec.Requirements[route] = []map[string][]string{}
			continue
		}
		reqs := []map[string][]string{{SchemeBearer: {need}}}
		if oidc {
			reqs = append(reqs, map[string][]string{SchemeOIDC: {need}})
		}
		sec.Requirements[route] = reqs
	}
	sec.Schemes = map[string]any{SchemeBearer: map[string]any{
		"type": "http", "scheme": "bearer", "bearerFormat": "API key or JWT",
		"description": a.bearerDescription(),
	}}
	if oidc {
		sec.Schemes[SchemeOIDC] = map[string]any{
			"type":             "openIdConnect",
			"openIdConnectUrl": strings.TrimSuffix(a.cfg.OIDC.Issuer, "/") + "/.well-known/openid-configuration",
			"description": "The issuer of the bearer tokens. Its tokens are sent as Authorization: Bearer <token>, " +
				"for the audience " + a.cfg.OIDC.Audience + ", with the scopes in the claim " + a.cfg.OIDC.ScopesClaim + ".",
		}
	}
	sec.Refusals = refusals(a.verifier != nil)
	return sec
}

// bearerDescription is the bearer scheme's description: the credentials the service takes
// and what each scope opens.
func (a *Authenticator) bearerDescription() string {
	var b strings.Builder
	b.WriteString("Authorization: Bearer <credentials>, either a static API key (" + APIKeyPrefix +
		"..., configured in API_KEYS as its SHA-256 with its scopes)")
	if a.verifier != nil {
		b.WriteString(" or a JWT of the issuer " + a.cfg.OIDC.Issuer + " for the audience " + a.cfg.OIDC.Audience +
			", signed with " + strings.Join(a.cfg.OIDC.Algorithms, ", ") + ", its scopes in the claim " + a.cfg.OIDC.ScopesClaim)
	} else {
		b.WriteString("; this service accepts no JWT (no OIDC_ISSUER is configured)")
	}
	b.WriteString(". Each protected operation names the one scope it needs. The scopes:")
	for _, sc := range Scopes() {
		b.WriteString(" " + sc + ": " + scopeText[sc] + ";")
	}
	return strings.TrimSuffix(b.String(), ";") + "."
}

// refusals are the responses of a refused request (refuse), in the standard error envelope.
func refusals(tokens bool) map[int]map[string]any {
	body := map[string]any{"application/json": map[string]any{"schema": httpx.ErrorSchema(nil)}}
	challenge := func(required bool, desc string) map[string]any {
		return map[string]any{"WWW-Authenticate": map[string]any{
			"description": desc, "required": required, "schema": httpx.StringSchema}}
	}
	r := map[int]map[string]any{
		401: {
			"description": "unauthorized: no credentials, or credentials that are malformed, unknown or revoked; " +
				"a token that is expired or not yet valid, of another issuer or audience, with an unknown key id, " +
				"a signature no key verifies or an algorithm not allowed",
			"headers": challenge(true, `Bearer realm="annals", with error="invalid_request" (malformed) or `+
				`error="invalid_token" (credentials not accepted) unless none were sent`),
			"content": body,
		},
		403: {
			"description": "forbidden: the credentials lack the scope this operation needs",
			"headers": challenge(false, `Bearer realm="annals", error="insufficient_scope", scope="<the operation's scope>", `+
				`when the operation's scope is missing`),
			"content": body,
		},
	}
	if tokens {
		r[503] = map[string]any{
			"description": "unavailable: the token issuer's keys cannot be fetched",
			"content":     body,
		}
	}
	return r
}

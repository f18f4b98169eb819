// Package auth is the authentication and authorization every Annals service puts in front
// of its routes: who is calling (a static API key, or an OpenID Connect / JWT bearer token
// verified against the issuer's published keys), and whether that caller holds the scope the
// route needs (a Policy, one per service, that names the scope of every route).
//
// Authentication is on by default. A request is refused with 401 (no credentials, malformed,
// expired, not yet valid, wrong issuer or audience, unknown key, bad signature, an algorithm
// that is not allowed) or 403 (the credentials lack the route's scope), in the standard error
// envelope through the shared error table (httpx), with a WWW-Authenticate header, and counted
// by reason in annals_auth_failures_total. What it enforces is what the services' OpenAPI
// documents declare (Authenticator.Security): the schemes, the scope of every operation, and
// the 401 and 403 answers.
//
// It must never log, label, echo or store a credential: API keys live in the configuration
// only as SHA-256 hashes and are compared in constant time; error messages and metric labels
// come from a fixed set. It must never accept an unsigned token (alg "none") or a token signed
// with a shared secret (HS256 and the like): only the asymmetric algorithms it is configured
// with.
package auth

package auth

import (
	"context"
	"slices"
)

// The scopes. Each route of the four services requires exactly one of them (or none: the
// health, metrics and OpenAPI routes are public). A caller holds a set.
const (
	// ScopeCommands: the writer's commands (POST, PATCH, DELETE on users and orders).
	ScopeCommands = "commands"
	// ScopeEventsRead: the writer's reads of the event store: aggregate state, streams, the
	// all-stream, statistics, the schema catalog.
	ScopeEventsRead = "events:read"
	// ScopeReadModelsRead: the projector's read models.
	ScopeReadModelsRead = "read-models:read"
	// ScopeNotificationsRead: the notifier's log of sent notifications.
	ScopeNotificationsRead = "notifications:read"
	// ScopeAuditRead: the auditor's audit log and its verification.
	ScopeAuditRead = "audit:read"
	// ScopePersonalData: see emails and names unredacted in whatever the other scopes let
	// one read. It opens no route by itself.
	ScopePersonalData = "personal-data"
	// ScopeUsersErase: erase a user's personal data for good (DELETE
	// /v1/users/{id}/personal-data), apart from the everyday commands.
	ScopeUsersErase = "users:erase"
)

// Scopes lists every scope, in a stable order.
func Scopes() []string {
	return []string{ScopeCommands, ScopeEventsRead, ScopeReadModelsRead, ScopeNotificationsRead, ScopeAuditRead, ScopePersonalData, ScopeUsersErase}
}

// KnownScope reports whether s is one of Scopes.
func KnownScope(s string) bool { return slices.Contains(Scopes(), s) }

// Redacted replaces an email or a name in a response to a caller without ScopePersonalData.
const Redacted = "[redacted]"

// Kinds of principal.
const (
	KindAPIKey    = "api_key"   // a static API key: Name is the key's name
	KindToken     = "token"     // an OIDC / JWT bearer token: Name is its subject, Issuer its issuer
	KindAnonymous = "anonymous" // authentication is turned off (AUTH_DISABLED)
)

// Principal is who a request comes from.
type Principal struct {
	Kind   string
	Name   string
	Issuer string
	Scopes []string
}

// Has reports whether p holds scope.
func (p Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Metadata keys of the actor, stored on every event a command records.
const (
	MetaActor       = "actor"        // the key's name, or the token's subject
	MetaActorKind   = "actor_kind"   // KindAPIKey, KindToken or KindAnonymous
	MetaActorIssuer = "actor_issuer" // the token's issuer (tokens only)
)

// Metadata is p as event metadata: MetaActor, MetaActorKind and, for a token, MetaActorIssuer.
func (p Principal) Metadata() map[string]string {
	m := map[string]string{MetaActor: p.Name, MetaActorKind: p.Kind}
	if p.Issuer != "" {
		m[MetaActorIssuer] = p.Issuer
	}
	return m
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal the middleware stored, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// SeesPersonalData reports whether a response to the request of ctx may carry emails and
// names unredacted: its principal holds ScopePersonalData. A context without a principal is
// one served without the middleware at all (a handler tested on its own): the services always
// install it (internal/app), so every request they serve carries one.
func SeesPersonalData(ctx context.Context) bool {
	p, ok := FromContext(ctx)
	return !ok || p.Has(ScopePersonalData)
}

// Actor is the event metadata of the principal of ctx (nil without one).
func Actor(ctx context.Context) map[string]string {
	p, ok := FromContext(ctx)
	if !ok {
		return nil
	}
	return p.Metadata()
}

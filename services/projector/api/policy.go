package api

import "github.com/annals-dev/annals/internal/auth"

// Policy is the scope each of the projector's routes needs: read-models:read. Without
// personal-data, users carry their email and name redacted.
func Policy() auth.Policy {
	return auth.Policy{
		"GET /v1/users/{id}":        auth.ScopeReadModelsRead,
		"GET /v1/users":             auth.ScopeReadModelsRead,
		"GET /v1/users/{id}/orders": auth.ScopeReadModelsRead,
		"GET /v1/orders/{id}":       auth.ScopeReadModelsRead,
		"GET /v1/orders":            auth.ScopeReadModelsRead,
		"GET /v1/stats/orders":      auth.ScopeReadModelsRead,
	}
}

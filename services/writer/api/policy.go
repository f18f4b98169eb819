package api

import "github.com/annals-dev/annals/internal/auth"

// Policy is the scope each of the writer's routes needs: commands for the commands,
// events:read for every read of the event store, users:erase for the erasure of a user's
// personal data. Without personal-data, the reads carry
// emails and names redacted.
func Policy() auth.Policy {
	return auth.Policy{
		"POST /v1/users":                         auth.ScopeCommands,
		"PATCH /v1/users/{id}":                   auth.ScopeCommands,
		"POST /v1/users/{id}/deactivate":         auth.ScopeCommands,
		"DELETE /v1/users/{id}/personal-data":    auth.ScopeUsersErase,
		"POST /v1/orders":                        auth.ScopeCommands,
		"POST /v1/orders/{id}/items":             auth.ScopeCommands,
		"DELETE /v1/orders/{id}/items/{item_id}": auth.ScopeCommands,
		"POST /v1/orders/{id}/confirm":           auth.ScopeCommands,
		"POST /v1/orders/{id}/cancel":            auth.ScopeCommands,
		"POST /v1/orders/{id}/ship":              auth.ScopeCommands,
		"GET /v1/users/{id}":                     auth.ScopeEventsRead,
		"GET /v1/orders/{id}":                    auth.ScopeEventsRead,
		"GET /v1/streams/{stream_id}":            auth.ScopeEventsRead,
		"GET /v1/streams/{stream_id}/events":     auth.ScopeEventsRead,
		"GET /v1/events":                         auth.ScopeEventsRead,
		"GET /v1/subscribe":                      auth.ScopeEventsRead,
		"GET /v1/stats":                          auth.ScopeEventsRead,
		"GET /v1/schemas":                        auth.ScopeEventsRead,
		"GET /v1/schemas/{fingerprint}":          auth.ScopeEventsRead,
	}
}

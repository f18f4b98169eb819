package main

import (
	"testing"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/projector/api"
)

const someID = "0190a4b2-7f3c-7a00-8000-000000000001"

// Every route of the projector refuses bad credentials, and only read-models:read reaches
// them, as /openapi.json declares.
func TestProjector_AuthRoutes(t *testing.T) {
	is := authtest.NewIssuer(t)
	// Serving without consuming: the routes are what is checked.
	base, _ := is.StartService(t, app.Projector, map[string]string{
		"PROJECTIONS_ENABLED": "false", "KAFKA_TOPIC_PREFIX": "test-" + testenv.UniqueName(t),
	}, migrate, wire)
	r := auth.ScopeReadModelsRead
	routes := map[string]authtest.Route{
		"GET /v1/users/{id}":        authtest.Req(r, "GET", "/v1/users/"+someID, ""),
		"GET /v1/users":             authtest.Req(r, "GET", "/v1/users", ""),
		"GET /v1/users/{id}/orders": authtest.Req(r, "GET", "/v1/users/"+someID+"/orders", ""),
		"GET /v1/orders/{id}":       authtest.Req(r, "GET", "/v1/orders/"+someID, ""),
		"GET /v1/orders":            authtest.Req(r, "GET", "/v1/orders", ""),
		"GET /v1/stats/orders":      authtest.Req(r, "GET", "/v1/stats/orders", ""),
	}
	is.Check(t, base, api.Policy(), routes, nil)
	t.Run("OpenAPI", func(t *testing.T) { authtest.CheckOpenAPI(t, base, api.Policy(), routes) })
}

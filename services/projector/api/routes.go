package api

import (
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// Register adds the routes to r, documented for /openapi.json.
func (a *API) Register(r *httpx.Router) {
	r.HandleFunc("GET", "/v1/users/{id}", singleOp("A user as the read model holds it.", userSchema), a.errs.Handler(a.getUser))
	r.HandleFunc("GET", "/v1/users", listOp("Users in id order, paged with limit and cursor.", userStatusParam, "users", userSchema), a.errs.Handler(a.listUsers))
	userOrders := listOp("A user's orders in id order, paged with limit and cursor.", orderStatusParam, "orders", orderSchema, 404)
	userOrders.Path = []httpx.Param{idParam}
	r.HandleFunc("GET", "/v1/users/{id}/orders", userOrders, a.errs.Handler(a.userOrders))
	r.HandleFunc("GET", "/v1/orders/{id}", singleOp("An order as the read model holds it.", orderSchema), a.errs.Handler(a.getOrder))
	r.HandleFunc("GET", "/v1/orders", listOp("Orders in id order, paged with limit and cursor.", orderStatusParam, "orders", orderSchema), a.errs.Handler(a.listOrders))
	r.HandleFunc("GET", "/v1/stats/orders", httpx.Operation{
		Summary: "Order statistics. confirmed_orders counts orders that are confirmed or shipped (not those cancelled " +
			"after their confirmation); total_revenue_cents sums their totals; conversion_rate is confirmed_orders " +
			"as a percentage of total_orders, with two decimals (0 without orders).",
		Tags:      []string{"read models"},
		Responses: map[int]string{200: "the statistics", 400: "a query parameter was given; this route takes none", 503: "the database is unavailable"},
		Schemas:   map[int]map[string]any{200: statsSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.orderStats))
}

func singleOp(summary string, schema map[string]any) httpx.Operation {
	return httpx.Operation{
		Summary: summary + " With min_version (and wait), it answers once the read model has applied that " +
			"version of the stream: read-your-writes after a command to the writer.",
		Tags: []string{"read models"},
		Path: []httpx.Param{idParam},
		Query: []httpx.Param{
			{Name: "min_version", Description: "the stream version the read model must have applied (the writer's ETag or version)",
				Schema: httpx.Int64(0)},
			{Name: "wait", Description: "how long to wait for min_version, or for the row to exist: 0, whole or decimal seconds " +
				"such as 2s or 1.5s, or milliseconds such as 500ms (default 0s, at most 30s)",
				Schema: map[string]any{"type": "string", "pattern": waitPattern, "example": "2s"}},
		},
		Responses: map[int]string{
			200: "the row; ETag is its version",
			400: "invalid_request: malformed id or query",
			404: "not_found: the read model has no such row (after the wait)",
			503: "unavailable: the database cannot be reached",
			504: "not_caught_up: the row is still below min_version after the wait",
		},
		Schemas: map[int]map[string]any{200: schema, 400: errorSchema, 404: errorSchema, 503: errorSchema, 504: errorSchema},
	}
}

func listOp(summary string, status httpx.Param, member string, item map[string]any, more ...int) httpx.Operation {
	op := httpx.Operation{
		Summary: summary,
		Tags:    []string{"read models"},
		Query:   append([]httpx.Param{status}, httpx.CursorParams(readmodel.DefaultLimit, readmodel.MaxLimit)...),
		Responses: map[int]string{
			200: "a page; next_cursor is set while more rows follow",
			400: "invalid_request: malformed id, status, limit or cursor",
			503: "unavailable: the database cannot be reached",
		},
		Schemas: map[int]map[string]any{
			200: httpx.CursorPage(member, item),
			400: errorSchema, 503: errorSchema,
		},
	}
	for _, code := range more {
		if code == 404 {
			op.Responses[404] = "not_found: the read model has no such user"
			op.Schemas[404] = errorSchema
		}
	}
	return op
}

var (
	idParam          = httpx.Param{Name: "id", Description: "the row's id, a UUID", Schema: httpx.UUIDSchema}
	userStatusParam  = httpx.Param{Name: "status", Description: "only users with this status", Schema: httpx.Enum(userStatuses)}
	orderStatusParam = httpx.Param{Name: "status", Description: "only orders with this status", Schema: httpx.Enum(orderStatuses)}

	userSchema = httpx.Object([]string{"id", "stream_id", "version", "email", "name", "status", "created_at", "updated_at"}, map[string]any{
		"id": httpx.UUIDSchema, "stream_id": httpx.StringSchema, "version": httpx.Int64(0),
		"email": personalSchema("the user's email"), "name": personalSchema("the user's name"), "status": httpx.Enum(userStatuses),
		"deactivation_reason": httpx.StringSchema,
		"created_at":          httpx.TimeSchema, "updated_at": httpx.TimeSchema, "deactivated_at": httpx.TimeSchema,
	})
	itemSchema = httpx.Object([]string{"id", "name", "price_cents", "quantity"}, map[string]any{
		"id": httpx.StringSchema, "name": httpx.StringSchema, "price_cents": httpx.Int64(0), "quantity": httpx.Int64(1),
	})
	orderSchema = httpx.Object([]string{"id", "stream_id", "version", "user_id", "status", "items", "total_cents", "item_count",
		"created_at", "updated_at"}, map[string]any{
		"id": httpx.UUIDSchema, "stream_id": httpx.StringSchema, "version": httpx.Int64(0), "user_id": httpx.UUIDSchema,
		"status":              httpx.Enum(orderStatuses),
		"items":               map[string]any{"type": "array", "items": itemSchema},
		"total_cents":         httpx.Int64(0),
		"item_count":          map[string]any{"type": "integer", "minimum": 0, "description": "the number of lines"},
		"cancellation_reason": httpx.StringSchema,
		"created_at":          httpx.TimeSchema, "updated_at": httpx.TimeSchema,
		"confirmed_at": httpx.TimeSchema, "cancelled_at": httpx.TimeSchema, "shipped_at": httpx.TimeSchema,
	})
	statsSchema = httpx.Object([]string{"total_orders", "confirmed_orders", "cancelled_orders", "total_revenue_cents", "conversion_rate"}, map[string]any{
		"total_orders": httpx.Int64(0), "confirmed_orders": httpx.Int64(0), "cancelled_orders": httpx.Int64(0),
		"total_revenue_cents": httpx.Int64(0),
		"conversion_rate":     map[string]any{"type": "number", "minimum": 0, "maximum": 100},
	})
	// personalSchema is the schema of a user's email or name: what the user gave, decrypted, or
	// a placeholder.
	personalSchema = func(what string) map[string]any {
		return map[string]any{"type": "string", "description": what + `; empty once the user's personal data is erased ` +
			`(DELETE /v1/users/{id}/personal-data on the writer), "` + readmodel.Erased + `" while the ` +
			`erasure is on its way (the user's key is destroyed, the erasure event not applied yet), "` + auth.Redacted +
			`" for a caller without the personal-data scope`}
	}
	errorSchema = httpx.ErrorSchema(map[string]any{
		"field":       map[string]any{"type": "string", "description": "the malformed parameter (400)"},
		"stream_id":   map[string]any{"type": "string", "description": "the stream that is behind (504)"},
		"version":     map[string]any{"type": "integer", "description": "the version the read model is at (504)"},
		"min_version": map[string]any{"type": "integer", "description": "the version asked for (504)"},
	})
)

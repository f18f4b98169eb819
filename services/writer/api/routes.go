package api

import (
	"net/http"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
)

// Register adds the writer's routes to r, documented for /openapi.json.
func (a *API) Register(r *httpx.Router) {
	r.HandleFunc("POST", "/v1/users", commandOp("Create a user. Without id, the server picks a UUIDv7.", true, createUserSchema, false), a.errs.Handler(a.command(a.createUser)))
	r.HandleFunc("PATCH", "/v1/users/{id}", commandOp("Change a user's name or email.", false, updateUserSchema, false), a.errs.Handler(a.command(a.updateUser)))
	r.HandleFunc("POST", "/v1/users/{id}/deactivate", commandOp("Deactivate a user.", false, reasonSchema, false), a.errs.Handler(a.command(a.deactivateUser)))
	r.HandleFunc("DELETE", "/v1/users/{id}/personal-data", erasureOp, a.errs.Handler(a.erasePersonalData))
	r.HandleFunc("GET", "/v1/users/{id}", stateOp("A user, rebuilt from its events; ?version or ?at give it as it was then.", userSchema), a.errs.Handler(a.getUser))

	r.HandleFunc("POST", "/v1/orders", commandOp("Place an order for an active user. Without id, the server picks a UUIDv7.", true, createOrderSchema, false), a.errs.Handler(a.command(a.createOrder)))
	r.HandleFunc("POST", "/v1/orders/{id}/items", commandOp("Add an item to a pending order.", false, itemSchema, false), a.errs.Handler(a.command(a.addItem)))
	removeItem := commandOp("Remove an item from a pending order.", false, emptySchema, true)
	removeItem.Path = append(removeItem.Path, httpx.Param{Name: "item_id", Description: "the item's id", Schema: itemIDSchema})
	r.HandleFunc("DELETE", "/v1/orders/{id}/items/{item_id}", removeItem, a.errs.Handler(a.command(a.removeItem)))
	r.HandleFunc("POST", "/v1/orders/{id}/confirm", commandOp("Confirm a pending order that has items.", false, emptySchema, true), a.errs.Handler(a.command(a.confirmOrder)))
	r.HandleFunc("POST", "/v1/orders/{id}/cancel", commandOp("Cancel an order that is not shipped.", false, reasonSchema, false), a.errs.Handler(a.command(a.cancelOrder)))
	r.HandleFunc("POST", "/v1/orders/{id}/ship", commandOp("Ship a confirmed order.", false, emptySchema, true), a.errs.Handler(a.command(a.shipOrder)))
	r.HandleFunc("GET", "/v1/orders/{id}", stateOp("An order, rebuilt from its events; ?version or ?at give it as it was then.", orderSchema), a.errs.Handler(a.getOrder))

	r.HandleFunc("GET", "/v1/streams/{stream_id}", httpx.Operation{
		Summary: "A stream's metadata: category, version, event count, creation and last change.",
		Tags:    []string{"history"},
		Path:    []httpx.Param{streamIDParam},
		Responses: map[int]string{200: "the stream", 400: "malformed stream id",
			404: "no such stream", 503: "the event store is unavailable"},
		Schemas: map[int]map[string]any{200: streamInfoSchema, 400: errorSchema, 404: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.getStream))
	r.HandleFunc("GET", "/v1/streams/{stream_id}/events", httpx.Operation{
		Summary: "One stream's events in version order, paged with from, to and limit.",
		Tags:    []string{"history"},
		Path:    []httpx.Param{streamIDParam},
		Query: []httpx.Param{
			{Name: "from", Description: "first version (default 0)", Schema: httpx.Int64(0)},
			{Name: "to", Description: "last version, inclusive (default: the end)", Schema: httpx.Int64(0)},
			limitParam,
		},
		Responses: map[int]string{200: "a page of events; next_from is set while there are more",
			400: "malformed stream id or query", 404: "no such stream", 503: "the event store is unavailable"},
		Schemas: map[int]map[string]any{200: streamPageSchema, 400: errorSchema, 404: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.getStreamEvents))
	r.HandleFunc("GET", "/v1/events", httpx.Operation{
		Summary:     "The all-stream: every event in global-position order, paged with after and limit.",
		Description: allStreamGuarantee,
		Tags:        []string{"history"},
		Query: []httpx.Param{
			{Name: "after", Description: "return events after this global position (default 0)", Schema: httpx.Int64(0)},
			limitParam,
			{Name: "since", Description: "recorded at or after this RFC 3339 time", Schema: httpx.TimeSchema},
			{Name: "until", Description: "recorded before this RFC 3339 time", Schema: httpx.TimeSchema},
			{Name: "type", Description: "only these event types (repeat the parameter for several)",
				Schema: map[string]any{"type": "array", "items": eventTypeSchema, "maxItems": MaxTypes}},
		},
		Responses: map[int]string{200: "a page of events; pass next_after as after for the next page",
			400: "malformed query", 503: "the event store is unavailable"},
		Schemas: map[int]map[string]any{200: allPageSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.listEvents))
	r.HandleFunc("GET", "/v1/subscribe", httpx.Operation{
		Summary:     "The live feed: the all-stream as Server-Sent Events as it commits, by type and category, from now or resumed after a position.",
		Description: subscribeDescription,
		Tags:        []string{"history"},
		Query: []httpx.Param{
			{Name: "types", Description: "only these event types, separated by commas (at most 20)",
				Schema: map[string]any{"type": "string", "pattern": typesPattern}},
			{Name: "category", Description: "only the events of the streams of this category, such as order",
				Schema: map[string]any{"type": "string", "pattern": categoryPattern}},
			{Name: "after", Description: "start after this global position (default: now, the head of the all-stream)", Schema: httpx.Int64(0)},
			{Name: "wait", Description: "end the stream after this long: 0, whole or decimal seconds such as 2s or 1.5s, or milliseconds " +
				"such as 500ms, at most 30s (default: the stream stays open until the client leaves)",
				Schema: map[string]any{"type": "string", "pattern": waitPattern, "example": "2s"}},
		},
		Headers: []httpx.Param{{Name: LastEventIDHeader, Description: "resume after this position: the id of the last event received, " +
			"as EventSource sends it when it reconnects; it wins over after",
			Schema: map[string]any{"type": "string", "pattern": "^[0-9]{1,18}$"}}},
		Responses: map[int]string{
			200: "a stream of Server-Sent Events (text/event-stream)",
			400: "malformed query or Last-Event-ID",
			503: "the event store is unavailable, this writer has FEED_MAX_SUBSCRIBERS subscribers already (with Retry-After), or it is stopping",
		},
		Schemas: map[int]map[string]any{200: sseEventSchema, 400: errorSchema, 503: errorSchema},
		Media:   map[int]string{200: "text/event-stream"},
	}, a.errs.Handler(a.subscribe))
	r.HandleFunc("GET", "/v1/stats", httpx.Operation{
		Summary: "Totals of events and streams, counts by event type and the most recent events.",
		Tags:    []string{"history"},
		Query: []httpx.Param{{Name: "recent", Description: "how many recent events (default 10)",
			Schema: map[string]any{"type": "integer", "minimum": 0, "maximum": MaxRecent}}},
		Responses: map[int]string{200: "the statistics", 400: "malformed query", 503: "the event store is unavailable"},
		Schemas:   map[int]map[string]any{200: statsSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.stats))
	a.registerSchemas(r)
}

// allStreamGuarantee is what the all-stream's readers (GET /v1/events, GET /v1/subscribe) may
// rely on.
const allStreamGuarantee = "Commit-safe: an event's position is handed out when it is appended, and an append may commit " +
	"after one with a higher position. Pages therefore end before the first position whose append is still open (until it " +
	"commits or rolls back), so that a client that pages forward with next_after never skips an event: whatever commits " +
	"later has a position above every position it has read. A page may be short, or empty, while an append is open; ask again."

// subscribeDescription says what GET /v1/subscribe sends.
const subscribeDescription = "Each event is a message with `id:` its global position, `event:` its type and `data:` the event " +
	"as one line of JSON, as GET /v1/events shows it (emails and names redacted without the personal-data scope). The stream " +
	"opens with a message that has only an `id:`, the position it starts after, so that a client that reconnects with " +
	"Last-Event-ID before any event misses nothing. A comment line (`: heartbeat`) comes every FEED_HEARTBEAT_INTERVAL " +
	"while nothing else does. A subscriber that falls more than FEED_BUFFER events behind gets a last event `dropped`, whose " +
	"data has reason, message and last_event_id, and the stream ends: it resumes with Last-Event-ID. Commit-safe, as GET " +
	"/v1/events is: an event goes out once every append with a lower position has committed or rolled back, so the stream " +
	"is in position order and never skips an event that commits late."

// erasureOp documents DELETE /v1/users/{id}/personal-data.
var erasureOp = httpx.Operation{
	Summary: "Erase a user's personal data: destroy the user's data key and record UserPersonalDataErased.",
	Description: "The user's email and name are recorded encrypted with a data key of the user's own " +
		"(PERSONAL_DATA_KEY_FILE). Erasure destroys that key, so that the values in every event, Kafka record, " +
		"snapshot and copy no longer decrypt, appends UserPersonalDataErased (which tells the read side to drop what it " +
		"holds) and deletes the user's snapshots. The user keeps its status, orders and history; its profile can no longer " +
		"be changed. Idempotent: a user erased already gets the same answer again, and no second event. 202: the key is " +
		"gone at once in this writer; other processes stop decrypting within 30 seconds (their key cache), and the read " +
		"models follow the event.",
	Tags:        []string{"commands"},
	Path:        []httpx.Param{idParam},
	Headers:     []httpx.Param{{Name: httpx.CorrelationHeader, Description: "stored on the event as its correlation id; generated when absent"}},
	RequestBody: emptySchema, RequestBodyOptional: true,
	Responses: map[int]string{
		202: "erased (now or before): the erasure's event (version, position) and when the key was destroyed",
		400: "invalid_request: malformed id or body",
		404: "not_found: no such user",
		409: "personal_data_not_encrypted: this deployment records personal data in clear (no PERSONAL_DATA_KEY_FILE), there is no key to destroy; or version_conflict",
		413: "too_large: the body exceeds 1 MiB",
		415: "unsupported_media_type: the body is not application/json",
		503: "unavailable: the event store or the key store cannot be reached (retry: erasure is idempotent); or event_sourcing_disabled",
	},
	Schemas: map[int]map[string]any{202: erasureResponseSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema,
		413: errorSchema, 415: errorSchema, 503: errorSchema},
}

var commandHeaders = []httpx.Param{
	{Name: IfMatchHeader, Description: `the stream version the command expects, such as "3" (quotes optional); another version gives 409`,
		Schema: map[string]any{"type": "string", "pattern": `^("[0-9]{1,18}"|[0-9]{1,18})$`}},
	{Name: IdempotencyKeyHeader, Description: "1 to 200 printable ASCII characters, not starting or ending with a space; " +
		"a retry with the same key and request returns the first response and appends nothing",
		Schema: map[string]any{"type": "string", "minLength": 1, "maxLength": MaxIdempotencyKeyLength, "pattern": "^[!-~]([ -~]*[!-~])?$"}},
	{Name: httpx.CorrelationHeader, Description: "stored on the events as their correlation id; generated when absent"},
}

func commandOp(summary string, create bool, body map[string]any, bodyOptional bool) httpx.Operation {
	ok, okText := http.StatusOK, "the command was applied"
	if create {
		ok, okText = http.StatusCreated, "created"
	}
	op := httpx.Operation{
		Summary:             summary,
		Tags:                []string{"commands"},
		Path:                []httpx.Param{idParam},
		Headers:             commandHeaders,
		RequestBody:         body,
		RequestBodyOptional: bodyOptional,
		Responses: map[int]string{
			ok:  okText + "; ETag is the stream's new version",
			400: "invalid_request: malformed body, path, query or header",
			409: "version_conflict: the stream is not at the If-Match version (or changed during the command)",
			413: "too_large: the body exceeds 1 MiB, or an event of the command exceeds MAX_EVENT_BYTES (max_bytes)",
			415: "unsupported_media_type: the body is not application/json",
			422: "rule_violation (the domain refuses the command) or idempotency_key_reused",
			429: "rate_limited: these credentials sent more commands than COMMAND_RATE_LIMIT allows; Retry-After gives the seconds to wait",
			503: "unavailable: the event store cannot be reached; or event_sourcing_disabled (no Retry-After): EVENT_SOURCING_ENABLED=false, the deployment takes no commands and appends nothing, while reads keep working",
		},
		Schemas: map[int]map[string]any{ok: commandResponseSchema},
	}
	if !create {
		op.Responses[404] = "not_found: no such aggregate"
	}
	for code := range op.Responses {
		if code >= 400 {
			op.Schemas[code] = errorSchema
		}
	}
	return op
}

func stateOp(summary string, schema map[string]any) httpx.Operation {
	return httpx.Operation{
		Summary: summary,
		Tags:    []string{"state"},
		Path:    []httpx.Param{idParam},
		Query: []httpx.Param{
			{Name: "version", Description: "the state at this stream version", Schema: httpx.Int64(0)},
			{Name: "at", Description: "the state at this RFC 3339 time", Schema: httpx.TimeSchema},
		},
		Responses: map[int]string{200: "the state; ETag is its version", 400: "malformed id or query",
			404: "no such aggregate (at that version or time)", 503: "the event store is unavailable"},
		Schemas: map[int]map[string]any{200: schema, 400: errorSchema, 404: errorSchema, 503: errorSchema},
	}
}

// JSON schemas of the bodies.

func withMinProperties(schema map[string]any, n int) map[string]any {
	schema["minProperties"] = n
	return schema
}

// erasable is the schema of a personal value in a user's state: s, "" once the user was
// erased, or "[erased]" when the key was destroyed but the state is from before the erasure.
func erasable(s map[string]any) map[string]any {
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "string", "enum": []string{"", domain.Erased}}}}
}

// text is the schema of a name or reason: at most maxLen characters, no control character,
// and not only white space (the server trims it).
func text(maxLen int) map[string]any {
	return map[string]any{"type": "string", "minLength": 1, "maxLength": maxLen,
		"pattern": `^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$`}
}

var (
	idParam       = httpx.Param{Name: "id", Description: "the aggregate's id, a UUID", Schema: httpx.UUIDSchema}
	streamIDParam = httpx.Param{Name: "stream_id", Description: "<category>-<id>, at most 200 bytes, such as user-0190a4b2-7f3c-7a00-8000-000000000001",
		Schema: map[string]any{"type": "string", "maxLength": 200, "pattern": "^[a-z0-9_]+-[!-~]+$"}}
	// itemIDSchema is an item's id: 1 to 100 printable characters without surrounding space.
	// The server takes any printable Unicode; the document says printable ASCII, the ids
	// that clients should use.
	itemIDSchema    = map[string]any{"type": "string", "minLength": 1, "maxLength": domain.MaxItemIDLength, "pattern": "^[!-~]([ -~]*[!-~])?$"}
	eventTypeSchema = httpx.FilterSchema

	emailSchema  = map[string]any{"type": "string", "format": "email", "maxLength": domain.MaxEmailLength}
	nameSchema   = text(domain.MaxNameLength)
	emptySchema  = httpx.Object(nil, map[string]any{})
	reasonSchema = httpx.Object([]string{"reason"}, map[string]any{"reason": text(domain.MaxReasonLength)})
	limitParam   = httpx.Param{Name: "limit", Description: "page size (default 100)",
		Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": MaxLimit}}

	createUserSchema = httpx.Object([]string{"email", "name"}, map[string]any{"id": httpx.UUIDSchema, "email": emailSchema, "name": nameSchema})
	updateUserSchema = withMinProperties(httpx.Object(nil, map[string]any{"email": emailSchema, "name": nameSchema}), 1)
	itemSchema       = httpx.Object([]string{"id", "name", "price_cents", "quantity"}, map[string]any{
		"id":          itemIDSchema,
		"name":        nameSchema,
		"price_cents": map[string]any{"type": "integer", "format": "int64", "minimum": 0, "maximum": domain.MaxPriceCents},
		"quantity":    map[string]any{"type": "integer", "format": "int64", "minimum": 1, "maximum": domain.MaxQuantity},
	})
	createOrderSchema = httpx.Object([]string{"user_id"}, map[string]any{
		"id": httpx.UUIDSchema, "user_id": httpx.UUIDSchema,
		"items": map[string]any{"type": "array", "items": itemSchema, "maxItems": domain.MaxItems},
	})
	commandResponseSchema = httpx.Object([]string{"id", "stream_id", "version", "position"}, map[string]any{
		"id": map[string]any{"type": "string"}, "stream_id": map[string]any{"type": "string"},
		"version": httpx.Int64(0), "position": httpx.Int64(1),
	})
	erasureResponseSchema = httpx.Object([]string{"id", "stream_id", "version", "position", "erased_at"}, map[string]any{
		"id": map[string]any{"type": "string"}, "stream_id": map[string]any{"type": "string"},
		"version": httpx.Int64(0), "position": httpx.Int64(1), "erased_at": httpx.TimeSchema,
	})
	userSchema = httpx.Object([]string{"id", "stream_id", "version", "email", "name", "status"}, map[string]any{
		"id": httpx.UUIDSchema, "stream_id": map[string]any{"type": "string"}, "version": httpx.Int64(0),
		"email": erasable(emailSchema), "name": erasable(nameSchema),
		"erased_at":           map[string]any{"type": "string", "format": "date-time", "description": "when the user's personal data was erased; email and name are then empty"},
		"erased_version":      map[string]any{"type": "integer", "format": "int64", "minimum": 1, "description": "the version of the erasure's event"},
		"status":              map[string]any{"type": "string", "enum": []string{string(domain.UserStatusActive), string(domain.UserStatusDeactivated)}},
		"deactivation_reason": map[string]any{"type": "string"},
	})
	orderSchema = httpx.Object([]string{"id", "stream_id", "version", "user_id", "status", "items", "total_cents"}, map[string]any{
		"id": httpx.UUIDSchema, "stream_id": map[string]any{"type": "string"}, "version": httpx.Int64(0),
		"user_id": httpx.UUIDSchema,
		"status": map[string]any{"type": "string", "enum": []string{string(domain.OrderStatusPending), string(domain.OrderStatusConfirmed),
			string(domain.OrderStatusCancelled), string(domain.OrderStatusShipped)}},
		"items":               map[string]any{"type": "array", "items": itemSchema},
		"total_cents":         httpx.Int64(0),
		"cancellation_reason": map[string]any{"type": "string"},
	})
	streamInfoSchema = map[string]any{"type": "object", "properties": map[string]any{
		"stream_id": map[string]any{"type": "string"}, "category": map[string]any{"type": "string"},
		"version": httpx.Int64(0), "event_count": httpx.Int64(1), "created_at": httpx.TimeSchema, "updated_at": httpx.TimeSchema,
	}}
	envelopeSchema = map[string]any{"type": "object", "properties": map[string]any{
		"event_id": httpx.UUIDSchema, "stream_id": map[string]any{"type": "string"}, "category": map[string]any{"type": "string"},
		"version": httpx.Int64(0), "global_position": httpx.Int64(1), "type": map[string]any{"type": "string"},
		"schema_version": map[string]any{"type": "integer"}, "data": map[string]any{"type": "object"},
		"metadata":       map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		"correlation_id": map[string]any{"type": "string"}, "causation_id": map[string]any{"type": "string"},
		"recorded_at": httpx.TimeSchema,
	}}
	eventsSchema     = map[string]any{"type": "array", "items": envelopeSchema}
	streamPageSchema = map[string]any{"type": "object", "properties": map[string]any{
		"stream_id": map[string]any{"type": "string"}, "events": eventsSchema, "next_from": httpx.Int64(0),
	}}
	allPageSchema = map[string]any{"type": "object", "properties": map[string]any{
		"events": eventsSchema, "next_after": httpx.Int64(0),
	}}
	// sseEventSchema is one Server-Sent Event of GET /v1/subscribe, its fields as EventSource
	// parses them (OpenAPI 3.1 gives a text/event-stream's schema per event; 3.2 calls it
	// itemSchema): the data is a JSON event of the all-stream, or the reason for a drop.
	sseEventSchema = map[string]any{"type": "object", "required": []string{"data"},
		"description": "one Server-Sent Event; messages without data (the opening id, the heartbeats) are not events",
		"properties": map[string]any{
			"id":    map[string]any{"type": "string", "pattern": "^[0-9]+$", "description": "the event's global position"},
			"event": map[string]any{"type": "string", "description": "the event's type, or dropped"},
			"data": map[string]any{"type": "string", "contentMediaType": "application/json",
				"contentSchema": map[string]any{"oneOf": []any{envelopeSchema, droppedSchema}}},
			"retry": map[string]any{"type": "integer", "minimum": 0},
		}}
	droppedSchema = httpx.Object([]string{"reason", "message", "last_event_id"}, map[string]any{
		"reason": httpx.Enum([]string{"slow"}), "message": httpx.StringSchema,
		"last_event_id": map[string]any{"type": "string", "pattern": "^[0-9]+$"},
	})
	statsSchema = map[string]any{"type": "object", "properties": map[string]any{
		"total_events": httpx.Int64(0), "total_streams": httpx.Int64(0),
		"events_by_type": map[string]any{"type": "object", "additionalProperties": httpx.Int64(0)},
		"recent_events":  eventsSchema,
	}}
	errorSchema = httpx.ErrorSchema(map[string]any{
		"field":     map[string]any{"type": "string", "description": "the malformed field, parameter or header (400)"},
		"rule":      map[string]any{"type": "string", "description": "the rule the command breaks (422 rule_violation)"},
		"stream_id": map[string]any{"type": "string"},
		"expected":  map[string]any{"type": "integer", "description": "the version the command expected (409)"},
		"actual":    map[string]any{"type": "integer", "description": "the stream's version (409); -1 when it does not exist"},
	})
)

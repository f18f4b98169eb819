package api

import (
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// Register adds the routes to r, documented for /openapi.json.
func (a *API) Register(r *httpx.Router) {
	r.HandleFunc("GET", "/v1/audit", httpx.Operation{
		Summary: "Audit log entries in sequence order, filtered by stream, event type and recording time, " +
			"paged with after and limit: who caused each event, what it was, when it was recorded and audited, " +
			"where the auditor read it, and its place in the hash chain.",
		Tags: []string{"audit"},
		Query: []httpx.Param{
			{Name: "stream_id", Description: "only this stream's events, such as user-0190a4b2-7f3c-7a00-8000-000000000001"},
			{Name: "type", Description: "only these event types (repeat the parameter for several)",
				Schema: map[string]any{"type": "array", "items": stringSchema, "maxItems": MaxTypes}},
			{Name: "since", Description: "recorded at or after this RFC 3339 time", Schema: timeSchema},
			{Name: "until", Description: "recorded before this RFC 3339 time", Schema: timeSchema},
			{Name: "after", Description: "entries after this sequence number (default 0: from the first)", Schema: intSchema(0)},
			{Name: "limit", Description: "page size (default 100)",
				Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": auditlog.MaxLimit}},
		},
		Responses: map[int]string{
			200: "a page of entries; pass next_after as after for the next page while more is true",
			400: "invalid_request: a malformed or unknown parameter",
			503: "unavailable: the database cannot be reached",
		},
		Schemas: map[int]map[string]any{200: pageSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.list))
	r.HandleFunc("GET", "/v1/audit/verify", httpx.Operation{
		Summary: "Verifies the hash chain from the first entry to the last: each entry's sequence number follows " +
			"the one before, its prev_hash is the previous entry's hash (32 zero bytes for the first) and its hash " +
			"is SHA-256 of its canonical encoding. Reports the first broken entry and what is wrong with it " +
			"(sequence_gap, unexpected_sequence, prev_hash_mismatch, hash_mismatch, unreadable_entry); ok is false then. " +
			"last_seq and last_hash are the last intact entry: keep them elsewhere to detect a later truncation.",
		Tags: []string{"audit"},
		Responses: map[int]string{
			200: "the verification's result, intact (ok) or broken (first_break)",
			400: "invalid_request: a query parameter was given; this route takes none",
			503: "unavailable: the database cannot be reached",
		},
		Schemas: map[int]map[string]any{200: reportSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.verify))
}

func object(required []string, props map[string]any) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

func intSchema(minimum int64) map[string]any {
	return map[string]any{"type": "integer", "format": "int64", "minimum": minimum}
}

var (
	uuidSchema   = map[string]any{"type": "string", "format": "uuid"}
	timeSchema   = map[string]any{"type": "string", "format": "date-time"}
	stringSchema = map[string]any{"type": "string"}
	hashSchema   = map[string]any{"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 in hex"}

	entrySchema = object([]string{"seq", "event_id", "type", "stream_id", "stream_version", "global_position",
		"schema_version", "data", "metadata", "correlation_id", "causation_id", "recorded_at", "audited_at",
		"topic", "partition", "offset", "prev_hash", "hash"}, map[string]any{
		"seq":             intSchema(1),
		"event_id":        uuidSchema,
		"type":            stringSchema,
		"stream_id":       stringSchema,
		"stream_version":  intSchema(0),
		"global_position": map[string]any{"type": "integer", "format": "int64"},
		"schema_version":  map[string]any{"type": "integer"},
		"data":            map[string]any{"description": "the event's data, as the auditor received it"},
		"metadata":        map[string]any{"type": "object", "additionalProperties": stringSchema},
		"correlation_id":  stringSchema,
		"causation_id":    stringSchema,
		"recorded_at":     timeSchema,
		"audited_at":      timeSchema,
		"topic":           stringSchema,
		"partition":       map[string]any{"type": "integer", "minimum": 0},
		"offset":          intSchema(0),
		"prev_hash":       hashSchema,
		"hash":            hashSchema,
	})
	pageSchema = object([]string{"entries", "next_after", "more"}, map[string]any{
		"entries":    map[string]any{"type": "array", "items": entrySchema},
		"next_after": intSchema(0),
		"more":       map[string]any{"type": "boolean"},
	})
	breakSchema = object([]string{"seq", "problem", "expected", "found", "detail"}, map[string]any{
		"seq": intSchema(0),
		"problem": map[string]any{"type": "string", "enum": []string{
			string(auditlog.ProblemSequenceGap), string(auditlog.ProblemSequenceOrder),
			string(auditlog.ProblemPrevHash), string(auditlog.ProblemHash), string(auditlog.ProblemUnreadable)}},
		"expected": stringSchema,
		"found":    stringSchema,
		"detail":   stringSchema,
	})
	reportSchema = object([]string{"ok", "checked", "last_seq", "last_hash", "took_ms"}, map[string]any{
		"ok":          map[string]any{"type": "boolean"},
		"checked":     intSchema(0),
		"last_seq":    intSchema(0),
		"last_hash":   hashSchema,
		"first_break": breakSchema,
		"took_ms":     map[string]any{"type": "number", "minimum": 0},
	})
	errorSchema = map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{
		"error": map[string]any{"type": "object", "required": []string{"code", "message"}, "properties": map[string]any{
			"code":    stringSchema,
			"message": stringSchema,
			"field":   map[string]any{"type": "string", "description": "the malformed parameter (400)"},
		}},
	}}
)

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
			{Name: "stream_id", Description: "only this stream's events, such as user-0190a4b2-7f3c-7a00-8000-000000000001",
				Schema: httpx.FilterSchema},
			{Name: "type", Description: "only these event types (repeat the parameter for several)",
				Schema: map[string]any{"type": "array", "maxItems": MaxTypes,
					"items": httpx.FilterSchema}},
			{Name: "since", Description: "recorded at or after this RFC 3339 time", Schema: httpx.TimeSchema},
			{Name: "until", Description: "recorded before this RFC 3339 time", Schema: httpx.TimeSchema},
			{Name: "after", Description: "entries after this sequence number (default 0: from the first)", Schema: httpx.Int64(0)},
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
			"last_seq and last_hash are the last intact entry: keep them elsewhere to detect a later truncation. " +
			"With signed checkpoints configured, an intact chain must also hold the newest checkpoint (checkpoint): " +
			"checkpoint_missing, checkpoint_mismatch or checkpoint_signature otherwise.",
		Tags: []string{"audit"},
		Responses: map[int]string{
			200: "the verification's result, intact (ok) or broken (first_break)",
			400: "invalid_request: a query parameter was given; this route takes none",
			503: "unavailable: the database cannot be reached",
		},
		Schemas: map[int]map[string]any{200: reportSchema, 400: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.verify))
}

var (
	hashSchema = map[string]any{"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 in hex"}

	entrySchema = httpx.Object([]string{"seq", "event_id", "type", "stream_id", "stream_version", "global_position",
		"schema_version", "data", "metadata", "correlation_id", "causation_id", "recorded_at", "audited_at",
		"topic", "partition", "offset", "prev_hash", "hash"}, map[string]any{
		"seq":             httpx.Int64(1),
		"event_id":        httpx.UUIDSchema,
		"type":            httpx.StringSchema,
		"stream_id":       httpx.StringSchema,
		"stream_version":  httpx.Int64(0),
		"global_position": map[string]any{"type": "integer", "format": "int64"},
		"schema_version":  map[string]any{"type": "integer"},
		"data":            map[string]any{"description": "the event's data, as the auditor received it"},
		"metadata":        map[string]any{"type": "object", "additionalProperties": httpx.StringSchema},
		"correlation_id":  httpx.StringSchema,
		"causation_id":    httpx.StringSchema,
		"recorded_at":     httpx.TimeSchema,
		"audited_at":      httpx.TimeSchema,
		"topic":           httpx.StringSchema,
		"partition":       map[string]any{"type": "integer", "minimum": 0},
		"offset":          httpx.Int64(0),
		"prev_hash":       hashSchema,
		"hash":            hashSchema,
	})
	pageSchema = httpx.Object([]string{"entries", "next_after", "more"}, map[string]any{
		"entries":    map[string]any{"type": "array", "items": entrySchema},
		"next_after": httpx.Int64(0),
		"more":       map[string]any{"type": "boolean"},
	})
	breakSchema = httpx.Object([]string{"seq", "problem", "expected", "found", "detail"}, map[string]any{
		"seq": httpx.Int64(0),
		"problem": map[string]any{"type": "string", "enum": []string{
			string(auditlog.ProblemSequenceGap), string(auditlog.ProblemSequenceOrder),
			string(auditlog.ProblemPrevHash), string(auditlog.ProblemHash), string(auditlog.ProblemUnreadable)}},
		"expected": httpx.StringSchema,
		"found":    httpx.StringSchema,
		"detail":   httpx.StringSchema,
	})
	reportSchema = httpx.Object([]string{"ok", "checked", "last_seq", "last_hash", "took_ms"}, map[string]any{
		"ok":          map[string]any{"type": "boolean"},
		"checked":     httpx.Int64(0),
		"last_seq":    httpx.Int64(0),
		"last_hash":   hashSchema,
		"first_break": breakSchema,
		"checkpoint":  checkpointSchema,
		"took_ms":     map[string]any{"type": "number", "minimum": 0},
	})
	checkpointSchema = httpx.Object([]string{"seq", "hash", "at", "key_id", "sig"}, map[string]any{
		"seq":    httpx.Int64(0),
		"hash":   hashSchema,
		"at":     map[string]any{"type": "string", "format": "date-time"},
		"key_id": httpx.StringSchema,
		"sig":    map[string]any{"type": "string", "format": "byte", "description": "Ed25519 signature, base64"},
	})
	errorSchema = httpx.ErrorSchema(map[string]any{
		"field": map[string]any{"type": "string", "description": "the malformed parameter (400)"},
	})
)

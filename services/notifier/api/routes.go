package api

import (
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/notifier/notify"
)

var listOp = httpx.Operation{
	Summary: "The sent log: one row per email event the notifier handled (status sent once the SMTP server " +
		"accepted the email, skipped when none was due, suppressed when the commands of its principal had caused " +
		"NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR emails in the hour already, or when its user's personal data is erased), " +
		"in event id order, paged with limit and cursor. The rows of a user whose personal data is erased show " +
		"\"" + notify.Erased + "\" as to and subject.",
	Tags: []string{"notifications"},
	Query: append([]httpx.Param{
		{Name: "to", Description: "only emails to this address (case-insensitive)", Schema: map[string]any{"type": "string", "format": "email", "maxLength": domain.MaxEmailLength}},
		{Name: "event_id", Description: "only the email of this event", Schema: httpx.UUIDSchema},
	}, httpx.CursorParams(notify.DefaultLimit, notify.MaxLimit)...),
	Responses: map[int]string{
		200: "a page; next_cursor is set while more rows follow",
		400: "invalid_request: malformed or unknown query parameter",
		403: "forbidden: the credentials lack notifications:read, or to is given without personal-data",
		503: "unavailable: the database cannot be reached",
	},
	Schemas: map[int]map[string]any{
		200: httpx.CursorPage("notifications", notificationSchema),
		400: errorSchema, 403: errorSchema, 503: errorSchema,
	},
}

var (
	notificationSchema = httpx.Object([]string{"event_id", "event_type", "stream_id", "kind", "to", "subject", "message_id", "status", "sent_at"},
		map[string]any{
			"event_id": httpx.UUIDSchema, "event_type": httpx.StringSchema, "stream_id": httpx.StringSchema,
			"kind":       map[string]any{"type": "string", "enum": []string{"welcome", "order_confirmed", "order_cancelled"}},
			"to":         map[string]any{"type": "string", "description": "the recipient's address; \"" + notify.Erased + "\" once the user's personal data is erased"},
			"subject":    map[string]any{"type": "string", "description": "the email's subject; \"" + notify.Erased + "\" once the user's personal data is erased"},
			"message_id": map[string]any{"type": "string", "description": "the email's Message-ID, without angle brackets"},
			"status":     map[string]any{"type": "string", "enum": []string{notify.StatusSent, notify.StatusSkipped, notify.StatusSuppressed}},
			"reason":     map[string]any{"type": "string", "description": "why no email was due (status skipped) or sent (status suppressed; \"" + notify.ReasonErased + "\" for a user whose personal data is erased)"},
			"sent_at":    httpx.TimeSchema,
		})
	errorSchema = httpx.ErrorSchema(map[string]any{
		"field": map[string]any{"type": "string", "description": "the malformed parameter (400)"},
	})
)

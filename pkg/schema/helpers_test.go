package schema_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

const (
	userID  = "0195a2c4-3b7e-7c1d-9f2a-6b8e4d1c0a57"
	orderID = "0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08"
)

// example is one event of a type, written with one version of its schema, and the data
// Decode gives for it (in the shape of the current version).
type example struct {
	typ     string
	version int
	data    string
	want    string
}

// examples has one event of every type and version, with data as the writer's domain writes
// it.
var examples = []example{
	{"UserCreated", 1, `{"user_id":"` + userID + `","email":"ada@example.com","name":"Ada Lovelace"}`,
		`{"user_id":"` + userID + `","email":"ada@example.com","name":"Ada Lovelace"}`},
	{"UserProfileUpdated", 1, `{"name":"Ada King"}`, `{"name":"Ada King","email":null}`},
	{"UserProfileUpdated", 2, `{"email":"ada@example.org"}`, `{"name":null,"email":"ada@example.org"}`},
	{"UserDeactivated", 1, `{"reason":"asked to close the account"}`, `{"reason":"asked to close the account"}`},
	{"OrderCreated", 1,
		`{"order_id":"` + orderID + `","user_id":"` + userID + `","items":[` +
			`{"id":"book","name":"A book","price_cents":1999,"quantity":2},` +
			`{"id":"pen","name":"A pen <blue> & cap","price_cents":150,"quantity":10}],"total_cents":5498}`,
		`{"order_id":"` + orderID + `","user_id":"` + userID + `","items":[` +
			`{"id":"book","name":"A book","price_cents":1999,"quantity":2},` +
			`{"id":"pen","name":"A pen <blue> & cap","price_cents":150,"quantity":10}],"total_cents":5498}`},
	{"ItemAdded", 1, `{"item":{"id":"mug","name":"A mug ☕","price_cents":899,"quantity":1}}`,
		`{"item":{"id":"mug","name":"A mug ☕","price_cents":899,"quantity":1}}`},
	{"ItemRemoved", 1, `{"item_id":"pen"}`, `{"item_id":"pen"}`},
	{"OrderConfirmed", 1, `{"total_cents":6397}`, `{"total_cents":6397}`},
	{"OrderCancelled", 1, `{"reason":"changed my mind"}`, `{"reason":"changed my mind"}`},
	{"OrderShipped", 1, `{}`, `{}`},
	{"UserPersonalDataErased", 1, `{"user_id":"` + userID + `","erased_at":"2026-03-01T12:00:00.123456Z"}`,
		`{"user_id":"` + userID + `","erased_at":"2026-03-01T12:00:00.123456Z"}`},
}

// envelope returns a recorded event of the given type and data.
func envelope(typ, data string) events.Envelope {
	stream := "order-" + orderID
	if typ[:4] == "User" {
		stream = "user-" + userID
	}
	return events.Envelope{
		EventID:        uuid.MustParse("0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0"),
		StreamID:       stream,
		Category:       events.Category(stream),
		Version:        3,
		GlobalPosition: 1042,
		Type:           typ,
		SchemaVersion:  1,
		Data:           json.RawMessage(data),
		Metadata:       map[string]string{"ignored": "yes"},
		CorrelationID:  "7d3c5e0b2a9f4e61b8d0c4a2f1e3b5d7",
		CausationID:    "",
		RecordedAt:     time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
	}
}

// checkDecoded compares what Decode gave with the event that was encoded and the data
// expected.
func checkDecoded(tb testing.TB, got schema.Decoded, sent events.Envelope, wantData string) {
	tb.Helper()
	e := got.Envelope
	if e.EventID != sent.EventID || e.StreamID != sent.StreamID || e.Category != sent.Category ||
		e.Version != sent.Version || e.GlobalPosition != sent.GlobalPosition || e.Type != sent.Type ||
		e.CorrelationID != sent.CorrelationID || e.CausationID != sent.CausationID ||
		!e.RecordedAt.Equal(sent.RecordedAt.Truncate(time.Microsecond)) || e.RecordedAt.Location() != time.UTC {
		tb.Errorf("envelope = %+v,\n want %+v", e, sent)
	}
	if e.Metadata != nil {
		tb.Errorf("metadata = %v, want nil", e.Metadata)
	}
	if string(e.Data) != wantData {
		tb.Errorf("data = %s,\n want %s", e.Data, wantData)
	}
}

func catalog(tb testing.TB) *schema.Catalog {
	tb.Helper()
	c, err := schema.Load(domain.Schemas())
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c
}

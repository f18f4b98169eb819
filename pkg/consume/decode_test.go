package consume_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

func TestSchemaDecoder(t *testing.T) {
	cat := domain.Catalog()
	e := events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: "user-1", Version: 3, GlobalPosition: 9, Type: "UserDeactivated",
		Data: json.RawMessage(`{"reason":"left"}`), RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		CorrelationID: "c1",
	}
	avro, fp, err := cat.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	js, _, err := cat.EncodeJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	dec := consume.SchemaDecoder(cat)
	hdr := func(ct string, extra ...kafka.Header) []kafka.Header {
		return append([]kafka.Header{{Key: "content-type", Value: []byte(ct)},
			{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))}}, extra...)
	}
	md := kafka.Header{Key: "metadata", Value: []byte(`{"user_agent":"curl"}`)}
	for name, m := range map[string]kafka.Message{
		"avro": {Key: []byte("user-1"), Value: avro, Headers: hdr(schema.ContentTypeAvro, md)},
		"json": {Key: []byte("user-1"), Value: js, Headers: hdr(schema.ContentTypeJSON, md)},
	} {
		got, err := dec(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.EventID != e.EventID || got.Version != 3 || got.CorrelationID != "c1" || got.Metadata["user_agent"] != "curl" ||
			!got.RecordedAt.Equal(e.RecordedAt) || string(got.Data) != `{"reason":"left"}` {
			t.Errorf("%s: decoded %+v", name, got)
		}
	}
	for name, tc := range map[string]struct {
		m    kafka.Message
		want string
	}{
		"key is not the stream": {kafka.Message{Key: []byte("user-2"), Value: avro, Headers: hdr(schema.ContentTypeAvro)}, "not its event's stream"},
		"unknown content type":  {kafka.Message{Key: []byte("user-1"), Value: avro, Headers: hdr("text/plain")}, "neither Avro nor JSON"},
		"bad metadata":          {kafka.Message{Key: []byte("user-1"), Value: avro, Headers: hdr(schema.ContentTypeAvro, kafka.Header{Key: "metadata", Value: []byte("[")})}, "metadata header"},
		"not avro":              {kafka.Message{Key: []byte("user-1"), Value: []byte("x"), Headers: hdr(schema.ContentTypeAvro)}, "C3 01"},
	} {
		if _, err := dec(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

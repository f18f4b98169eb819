package consume_test

import (
	"context"
	"encoding/json"
	"errors"
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

// What NewDecoder's errors tell the runtime, record by record.
func TestNewDecoder(t *testing.T) {
	relay := signer(t, relayKey)
	good, _ := relayRecord(t, "user-1", 0, false, relay)
	unsigned, _ := relayRecord(t, "user-1", 0, false, nil)
	signedGarbage := kafka.Message{Key: []byte("user-1"), Value: []byte("x")}
	relay.Sign(&signedGarbage)
	garbage := kafka.Message{Key: []byte("user-1"), Value: []byte("x")}
	newer, _, err := domain.Catalog().Encode(events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: "user-1",
		Type: "UserProfileUpdated", Data: json.RawMessage(`{"email":"a@example.com"}`), RecordedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	signedNewer := kafka.Message{Key: []byte("user-1"), Value: newer}
	relay.Sign(&signedNewer)
	unknown := func(context.Context, uint64) (schema.Registration, error) {
		return schema.Registration{}, schema.ErrUnknownFingerprint
	}
	down := func(context.Context, uint64) (schema.Registration, error) {
		return schema.Registration{}, errors.New("connection refused")
	}

	const (
		ok = iota
		quarantineSignature
		quarantineUndecodable
		unavailable
		poison
	)
	for _, tc := range []struct {
		name string
		cfg  consume.DecoderConfig
		m    kafka.Message
		want int
	}{
		{"Verified", consume.DecoderConfig{Verifier: verifier(t, relayKey)}, good, ok},
		{"Unsigned", consume.DecoderConfig{Verifier: verifier(t, relayKey)}, unsigned, quarantineSignature},
		{"OtherKey", consume.DecoderConfig{Verifier: verifier(t, otherKey)}, good, quarantineSignature},
		{"UnsignedGarbage", consume.DecoderConfig{Verifier: verifier(t, relayKey)}, garbage, quarantineSignature},
		{"AcceptedUnsigned", consume.DecoderConfig{Verifier: verifier(t, relayKey), AcceptUnsigned: true}, unsigned, ok},
		{"AcceptedUnsignedGarbage", consume.DecoderConfig{Verifier: verifier(t, relayKey), AcceptUnsigned: true}, garbage, quarantineUndecodable},
		{"AcceptUnsignedStillVerifiesSigned", consume.DecoderConfig{Verifier: verifier(t, otherKey), AcceptUnsigned: true}, good, quarantineSignature},
		{"VerifiedGarbage", consume.DecoderConfig{Verifier: verifier(t, relayKey)}, signedGarbage, poison},
		{"TrustedGarbage", consume.DecoderConfig{}, garbage, poison},
		{"VerifiedUnknownToTheTable", consume.DecoderConfig{Verifier: verifier(t, relayKey), Lookup: unknown}, signedNewer, unavailable},
		{"VerifiedTableDown", consume.DecoderConfig{Verifier: verifier(t, relayKey), Lookup: down}, signedNewer, unavailable},
		{"VerifiedUnknownWithoutLookup", consume.DecoderConfig{Verifier: verifier(t, relayKey)}, signedNewer, poison},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Catalog == nil {
				tc.cfg.Catalog = olderCatalog(t)
			}
			_, err := consume.NewDecoder(tc.cfg)(tc.m)
			var q *consume.QuarantineError
			got := poison
			switch {
			case err == nil:
				got = ok
			case errors.As(err, &q) && q.Reason == consume.QuarantineSignature:
				got = quarantineSignature
			case errors.As(err, &q) && q.Reason == consume.QuarantineUndecodable:
				got = quarantineUndecodable
			case consume.IsUnavailable(err):
				got = unavailable
			}
			names := []string{"ok", "quarantined (signature)", "quarantined (undecodable)", "unavailable", "poison"}
			if got != tc.want {
				t.Errorf("error %v is %s, want %s", err, names[got], names[tc.want])
			}
		})
	}
}

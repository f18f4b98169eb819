package consume_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// The decoder reads MessagePack and Protocol Buffers records by their content type; a record
// of the relay's whose value does not fit the schema its fingerprint names is poison (the
// runtime dead-letters it), neither quarantined nor waited for.
func TestNewDecoder_Formats(t *testing.T) {
	cat := domain.Catalog()
	e := events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: "user-1", Version: 3, GlobalPosition: 9, Type: "UserDeactivated",
		Data: json.RawMessage(`{"reason":"left"}`), RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}
	mp, fp, err := cat.EncodeMsgpack(e)
	if err != nil {
		t.Fatal(err)
	}
	pb, _, err := cat.EncodeProtobuf(e)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(ct string, v []byte) kafka.Message {
		return kafka.Message{Key: []byte("user-1"), Value: v, Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(ct)}, {Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))}}}
	}
	dec := consume.NewDecoder(consume.DecoderConfig{Catalog: cat})
	for name, m := range map[string]kafka.Message{"msgpack": msg(schema.ContentTypeMsgpack, mp), "protobuf": msg(schema.ContentTypeProtobuf, pb)} {
		got, err := dec(m)
		if err != nil || got.EventID != e.EventID || string(got.Data) != `{"reason":"left"}` {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	var doc map[string]any
	if err := msgpack.Unmarshal(mp, &doc); err != nil {
		t.Fatal(err)
	}
	doc["reason"] = 7
	wrongType, _ := msgpack.Marshal(doc)
	doc["reason"], doc["extra"] = "left", true
	unknownField, _ := msgpack.Marshal(doc)
	for name, m := range map[string]kafka.Message{
		"msgpack wrong type":     msg(schema.ContentTypeMsgpack, wrongType),
		"msgpack unknown field":  msg(schema.ContentTypeMsgpack, unknownField),
		"msgpack as protobuf":    msg(schema.ContentTypeProtobuf, mp),
		"protobuf as msgpack":    msg(schema.ContentTypeMsgpack, pb),
		"protobuf extra field":   msg(schema.ContentTypeProtobuf, append(append([]byte{}, pb...), 0xa0, 0x01, 0x01)),
		"msgpack no fingerprint": {Key: []byte("user-1"), Value: mp, Headers: []kafka.Header{{Key: "content-type", Value: []byte(schema.ContentTypeMsgpack)}}},
	} {
		_, err := dec(m)
		if err == nil || consume.IsQuarantined(err) || consume.IsUnavailable(err) {
			t.Errorf("%s: %v, want a poison error", name, err)
		}
		if name != "msgpack no fingerprint" && !errors.Is(err, schema.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

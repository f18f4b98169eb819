package schema_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// FuzzDecode feeds Decode arbitrary bytes, starting from the golden values: it must never
// panic, and every error must be one of the package's.
func FuzzDecode(f *testing.F) {
	c, err := schema.Load(domain.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.bin"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	f.Fuzz(func(t *testing.T, value []byte) {
		d, err := c.Decode(value)
		if err != nil {
			if !errors.Is(err, schema.ErrNotSingleObject) && !errors.Is(err, schema.ErrUnknownFingerprint) && !errors.Is(err, schema.ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		// What decodes re-encodes, and decodes to the same event again.
		again, _, err := c.Encode(d.Envelope)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", d.Envelope, err)
		}
		d2, err := c.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if string(d2.Envelope.Data) != string(d.Envelope.Data) || d2.Envelope.EventID != d.Envelope.EventID ||
			!d2.Envelope.RecordedAt.Equal(d.Envelope.RecordedAt) {
			t.Fatalf("round trip changed the event:\n %+v\n %+v", d.Envelope, d2.Envelope)
		}
	})
}

// FuzzEncode feeds Encode arbitrary data for every event type: it must never panic, refuse
// with a *FieldError, or write a value that decodes to data that encodes to the same value.
func FuzzEncode(f *testing.F) {
	c, err := schema.Load(domain.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	for i, ex := range examples {
		f.Add(uint8(i), ex.data)
	}
	f.Add(uint8(4), `{"items":[{"price_cents":1e400}]}`)
	f.Fuzz(func(t *testing.T, typ uint8, data string) {
		e := envelope(eventTypes[int(typ)%len(eventTypes)], data)
		value, _, err := c.Encode(e)
		if err != nil {
			var fe *schema.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FieldError: %v", err)
			}
			return
		}
		d, err := c.Decode(value)
		if err != nil {
			t.Fatalf("Encode wrote a value Decode refuses: %v", err)
		}
		e.Data = d.Envelope.Data
		again, _, err := c.Encode(e)
		if err != nil || string(again) != string(value) {
			t.Fatalf("decoded data %s re-encodes differently: %v", d.Envelope.Data, err)
		}
	})
}

// fuzzOtherFormat feeds a decoder of a format whose schema the record's header names
// arbitrary bytes, starting from the golden values of that format in dir, with each of the
// catalog's fingerprints: it must never panic, every error must be one of the package's, and
// what decodes must encode and decode again to the same event.
func fuzzOtherFormat(f *testing.F, dir string, decode func(*schema.Catalog, []byte, uint64) (schema.Decoded, error),
	encode func(*schema.Catalog, events.Envelope) ([]byte, uint64, error)) {
	c, err := schema.Load(domain.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	infos := c.Schemas()
	files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for i, info := range infos {
			if strings.HasPrefix(filepath.Base(p), fmt.Sprintf("%s.v%d.", info.Type, info.Version)) {
				f.Add(uint8(i), b)
			}
		}
	}
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, which uint8, value []byte) {
		fp := infos[int(which)%len(infos)].Fingerprint
		d, err := decode(c, value, fp)
		if err != nil {
			if !errors.Is(err, schema.ErrUnknownFingerprint) && !errors.Is(err, schema.ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, fp2, err := encode(c, d.Envelope)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", d.Envelope, err)
		}
		d2, err := decode(c, again, fp2)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if string(d2.Envelope.Data) != string(d.Envelope.Data) || d2.Envelope.EventID != d.Envelope.EventID ||
			!d2.Envelope.RecordedAt.Equal(d.Envelope.RecordedAt) {
			t.Fatalf("round trip changed the event:\n %+v\n %+v", d.Envelope, d2.Envelope)
		}
	})
}

// FuzzDecodeMsgpack: DecodeMsgpack on arbitrary bytes.
func FuzzDecodeMsgpack(f *testing.F) {
	fuzzOtherFormat(f, "golden-msgpack", (*schema.Catalog).DecodeMsgpack, (*schema.Catalog).EncodeMsgpack)
}

// FuzzDecodeProtobuf: DecodeProtobuf on arbitrary bytes.
func FuzzDecodeProtobuf(f *testing.F) {
	fuzzOtherFormat(f, "golden-protobuf", (*schema.Catalog).DecodeProtobuf, (*schema.Catalog).EncodeProtobuf)
}

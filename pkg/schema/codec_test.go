package schema_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// current returns the example of each type written with its current version.
func current(tb testing.TB, c *schema.Catalog) []example {
	tb.Helper()
	var out []example
	for _, ex := range examples {
		if in, ok := c.Current(ex.typ); ok && in.Version == ex.version {
			out = append(out, ex)
		}
	}
	if len(out) != len(eventTypes) {
		tb.Fatalf("%d current examples for %d types", len(out), len(eventTypes))
	}
	return out
}

func TestCatalog_Encode(t *testing.T) {
	c := catalog(t)
	for _, ex := range current(t, c) {
		t.Run(ex.typ, func(t *testing.T) {
			e := envelope(ex.typ, ex.data)
			value, fp, err := c.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if in, _ := c.Current(ex.typ); fp != in.Fingerprint {
				t.Errorf("fingerprint = %016x, want the current %s", fp, in.FingerprintHex)
			}
			if !bytes.Equal(value[:2], []byte{0xC3, 0x01}) || binary.LittleEndian.Uint64(value[2:10]) != fp {
				t.Errorf("header = % x, want C3 01 and %016x little-endian", value[:10], fp)
			}
			d, err := c.Decode(value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkDecoded(t, d, e, ex.want)
			if d.WriterVersion != ex.version || d.Fingerprint != fp || d.Envelope.SchemaVersion != ex.version {
				t.Errorf("writer v%d %016x, schema version %d; want v%d %016x", d.WriterVersion, d.Fingerprint, d.Envelope.SchemaVersion, ex.version, fp)
			}

			t.Run("JSON", func(t *testing.T) {
				j, jfp, err := c.EncodeJSON(e)
				if err != nil {
					t.Fatalf("EncodeJSON: %v", err)
				}
				if jfp != fp {
					t.Errorf("EncodeJSON fingerprint = %016x, Encode's %016x", jfp, fp)
				}
				want := `{"event_id":"0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0","stream_id":"` + e.StreamID + `","version":3,` +
					`"global_position":1042,"recorded_at":"2025-03-14T15:09:26.535897Z",` +
					`"correlation_id":"7d3c5e0b2a9f4e61b8d0c4a2f1e3b5d7","causation_id":null`
				if ex.want != "{}" {
					want += "," + ex.want[1:]
				} else {
					want += "}"
				}
				if string(j) != want {
					t.Errorf("EncodeJSON =\n %s\nwant\n %s", j, want)
				}
				d, err := c.DecodeJSON(j, jfp)
				if err != nil {
					t.Fatalf("DecodeJSON: %v", err)
				}
				checkDecoded(t, d, e, ex.want)
			})
		})
	}
}

func TestCatalog_Encode_Values(t *testing.T) {
	c := catalog(t)
	for _, tc := range []struct {
		name, typ, data, want string
	}{
		{"EmptyDataIsEmptyObject", "OrderShipped", ``, `{}`},
		{"DefaultsFillOptionalFields", "UserProfileUpdated", `{}`, `{"name":null,"email":null}`},
		{"ExplicitNull", "UserProfileUpdated", `{"name":null,"email":"a@b.c"}`, `{"name":null,"email":"a@b.c"}`},
		{"WholeNumberWithExponent", "OrderConfirmed", `{"total_cents":1e3}`, `{"total_cents":1000}`},
		{"WholeNumberWithFraction", "OrderConfirmed", `{"total_cents":12.0}`, `{"total_cents":12}`},
		{"LargestLong", "OrderConfirmed", `{"total_cents":9223372036854775807}`, `{"total_cents":9223372036854775807}`},
		{"SmallestLong", "OrderConfirmed", `{"total_cents":-9223372036854775808}`, `{"total_cents":-9223372036854775808}`},
		{"NoItems", "OrderCreated", `{"order_id":"o","user_id":"u","items":[],"total_cents":0}`, `{"order_id":"o","user_id":"u","items":[],"total_cents":0}`},
		{"Escapes", "OrderCancelled", `{"reason":"\"quoted\"\n\u00e9\u2028"}`, `{"reason":"\"quoted\"\né\u2028"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := envelope(tc.typ, tc.data)
			e.CorrelationID, e.CausationID = "", "cause"
			value, _, err := c.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			d, err := c.Decode(value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkDecoded(t, d, e, tc.want)
		})
	}
	t.Run("RecordedAtToTheMicrosecond", func(t *testing.T) {
		e := envelope("OrderShipped", `{}`)
		e.RecordedAt = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
		value, _, err := c.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Decode(value)
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2025, 1, 2, 2, 4, 5, 123456000, time.UTC); d.Envelope.RecordedAt != want {
			t.Errorf("recorded_at = %v, want %v", d.Envelope.RecordedAt, want)
		}
	})
}

func TestCatalog_Encode_Errors(t *testing.T) {
	c := catalog(t)
	t.Run("ErrUnknownType", func(t *testing.T) {
		for _, enc := range []func(events.Envelope) ([]byte, uint64, error){c.Encode, c.EncodeJSON} {
			_, _, err := enc(envelope("UserRenamed", `{}`))
			if !errors.Is(err, schema.ErrUnknownType) || !strings.Contains(err.Error(), "UserRenamed") {
				t.Errorf("err = %v, want ErrUnknownType naming the type", err)
			}
		}
	})
	created := `"order_id":"o","user_id":"u","total_cents":1`
	for _, tc := range []struct {
		name, typ, data string
		field, problem  string
	}{
		{"MissingField", "UserCreated", `{"user_id":"u","name":"Ada"}`, "email", "missing"},
		{"MissingNestedField", "OrderCreated", `{` + created + `,"items":[{"id":"a","name":"A","price_cents":1,"quantity":1},{"id":"b","name":"B","price_cents":1}]}`,
			"items[1].quantity", "missing"},
		{"UnknownField", "UserCreated", `{"user_id":"u","email":"e","name":"n","nickname":"x"}`, "nickname", "unknown field"},
		{"UnknownNestedField", "ItemAdded", `{"item":{"id":"a","name":"A","price_cents":1,"quantity":1,"colour":"red"}}`, "item.colour", "unknown field"},
		{"UnknownFieldOfOldVersion", "UserProfileUpdated", `{"nickname":"x"}`, "nickname", "unknown field"},
		{"EnvelopeFieldInData", "ItemRemoved", `{"item_id":"a","stream_id":"x"}`, "stream_id", "envelope field"},
		{"WrongType", "UserDeactivated", `{"reason":5}`, "reason", "want a string, got a number"},
		{"WrongTypeInUnion", "UserProfileUpdated", `{"name":true}`, "name", "want a string, got a boolean"},
		{"WrongTypeArray", "OrderCreated", `{` + created + `,"items":{}}`, "items", "want an array, got an object"},
		{"WrongTypeRecord", "ItemAdded", `{"item":"book"}`, "item", "want an object, got a string"},
		{"LongAsString", "OrderConfirmed", `{"total_cents":"100"}`, "total_cents", "want an integer, got a string"},
		{"NonInteger", "OrderConfirmed", `{"total_cents":12.5}`, "total_cents", "12.5 is not an integer"},
		{"NonIntegerExponent", "OrderConfirmed", `{"total_cents":1e-3}`, "total_cents", "not an integer"},
		{"Overflow", "OrderConfirmed", `{"total_cents":9223372036854775808}`, "total_cents", "out of range for long"},
		{"Underflow", "OrderConfirmed", `{"total_cents":-9223372036854775809}`, "total_cents", "out of range for long"},
		{"OverflowExponent", "OrderConfirmed", `{"total_cents":1e19}`, "total_cents", "out of range for long"},
		{"NestedOverflow", "ItemAdded", `{"item":{"id":"a","name":"A","price_cents":1e400,"quantity":1}}`, "item.price_cents", "out of range"},
		{"NotAnObject", "OrderShipped", `[]`, "", "data must be a JSON object, not an array"},
		{"Null", "OrderShipped", `null`, "", "data must be a JSON object, not null"},
		{"InvalidJSON", "OrderShipped", `{"a":`, "", "invalid JSON"},
		{"TrailingData", "OrderShipped", `{} {}`, "", "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, enc := range []struct {
				name string
				fn   func(events.Envelope) ([]byte, uint64, error)
			}{{"Encode", c.Encode}, {"EncodeJSON", c.EncodeJSON}} {
				value, _, err := enc.fn(envelope(tc.typ, tc.data))
				var fe *schema.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("%s = %q, %v; want a *FieldError", enc.name, value, err)
				}
				if fe.Type != tc.typ || fe.Field != tc.field || !strings.Contains(fe.Problem, tc.problem) {
					t.Errorf("%s: %+v, want type %s, field %q, problem containing %q", enc.name, fe, tc.typ, tc.field, tc.problem)
				}
				if msg := err.Error(); !strings.Contains(msg, tc.typ) || !strings.Contains(msg, tc.field) {
					t.Errorf("%s: message %q does not name the type and field", enc.name, msg)
				}
			}
		})
	}
	t.Run("RecordedAtOutOfRange", func(t *testing.T) {
		e := envelope("OrderShipped", `{}`)
		e.RecordedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		var fe *schema.FieldError
		if _, _, err := c.Encode(e); !errors.As(err, &fe) || fe.Field != "recorded_at" {
			t.Errorf("err = %v, want a *FieldError on recorded_at", err)
		}
	})
}

func TestCatalog_Decode_Errors(t *testing.T) {
	c := catalog(t)
	value, fp, err := c.Encode(envelope("OrderCreated", examples[4].data))
	if err != nil {
		t.Fatal(err)
	}
	header := value[:10]
	body := value[10:]
	with := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// itemsAt is where the items array starts in body: after the envelope and the two ids.
	e := envelope("OrderCreated", `{"order_id":"o","user_id":"u","items":[],"total_cents":7}`)
	empty, _, err := c.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	itemsAt := len(empty) - 10 - 2 // the items array's 0 block and total_cents 7 (0e)
	if empty[len(empty)-2] != 0 || empty[len(empty)-1] != 0x0e {
		t.Fatalf("unexpected layout % x", empty)
	}
	prefix := empty[10 : 10+itemsAt]
	otherFP := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, fp^1)
	for _, tc := range []struct {
		name  string
		value []byte
		want  error
		msg   string
	}{
		{"Empty", nil, schema.ErrNotSingleObject, "C3 01"},
		{"BadMagic", with([]byte{0xC3, 0x02}, value[2:]), schema.ErrNotSingleObject, "C3 01"},
		{"NoMagic", []byte(`{"event_id":"x"}`), schema.ErrNotSingleObject, "C3 01"},
		{"ShortHeader", value[:9], schema.ErrNotSingleObject, "header of 9 bytes"},
		{"UnknownFingerprint", with(otherFP, body), schema.ErrUnknownFingerprint, schema.FormatFingerprint(fp ^ 1)},
		{"EmptyBody", header, schema.ErrMalformed, "truncated"},
		{"TruncatedBody", value[:len(value)-1], schema.ErrMalformed, "truncated"},
		{"TruncatedString", value[:40], schema.ErrMalformed, "OrderCreated v1"},
		{"TrailingBytes", with(value, []byte{0}), schema.ErrMalformed, "1 bytes after the record"},
		{"HugeArrayBlock", with(header, prefix, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0x0e}), schema.ErrMalformed, "items: block of 2147483647 items"},
		{"HugeNegativeBlock", with(header, prefix, []byte{0xfd, 0xff, 0xff, 0xff, 0x0f, 0x02, 0, 0x0e}), schema.ErrMalformed, "items: block of"},
		{"HugeString", with(header, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}), schema.ErrMalformed, "event_id: string of 2147483647 bytes"},
		{"InvalidUTF8", with(header, []byte{0x04, 0xff, 0xfe}, body[37:]), schema.ErrMalformed, "not valid UTF-8"},
		{"NotAUUID", with(header, []byte{0x48}, bytes.Repeat([]byte("z"), 36), body[37:]), schema.ErrMalformed, "event_id"},
		{"VarintOverflow", with(header, body[:37], bytes.Repeat([]byte{0xff}, 11)), schema.ErrMalformed, "overflows"},
		{"BadUnionBranch", with(header, unionAt(t, c), []byte{0x04}), schema.ErrMalformed, "union branch 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.Decode(tc.value)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Decode = %+v, %v; want %v containing %q", d, err, tc.want, tc.msg)
			}
		})
	}
	t.Run("DecodeJSON", func(t *testing.T) {
		j, jfp, err := c.EncodeJSON(envelope("UserDeactivated", `{"reason":"r"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DecodeJSON(j, jfp^1); !errors.Is(err, schema.ErrUnknownFingerprint) {
			t.Errorf("unknown fingerprint: %v", err)
		}
		for _, tc := range []struct{ name, value, field string }{
			{"NotJSON", `{`, ""},
			{"MissingEnvelopeField", strings.Replace(string(j), `"version":3,`, ``, 1), "version"},
			{"UnknownField", strings.Replace(string(j), `"reason"`, `"why"`, 1), "why"},
			{"BadUUID", strings.Replace(string(j), `0195a2c4-7f00`, `0195a2c4_7f00`, 1), "event_id"},
			{"BadTime", strings.Replace(string(j), `2025-03-14T15`, `2025-03-14 15`, 1), "recorded_at"},
		} {
			_, err := c.DecodeJSON([]byte(tc.value), jfp)
			var fe *schema.FieldError
			if !errors.Is(err, schema.ErrMalformed) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("%s: err = %v, want ErrMalformed with a *FieldError on %q", tc.name, err, tc.field)
			}
		}
	})
}

// unionAt returns the body of an OrderShipped value up to its correlation_id union.
func unionAt(tb testing.TB, c *schema.Catalog) []byte {
	tb.Helper()
	e := envelope("OrderShipped", `{}`)
	e.CorrelationID, e.CausationID = "", ""
	value, _, err := c.Encode(e)
	if err != nil {
		tb.Fatal(err)
	}
	if value[len(value)-2] != 0 || value[len(value)-1] != 0 {
		tb.Fatalf("unexpected layout % x", value)
	}
	return value[10 : len(value)-2]
}

// TestIndependentConsumer reads a value Encode wrote the way a consumer that knows nothing of
// this package would: the .avsc files from disk, fingerprints by the Avro specification,
// goavro codecs of its own, the single-object header by hand.
func TestIndependentConsumer(t *testing.T) {
	paths, err := filepath.Glob("../../internal/domain/avro/*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	codecs := map[uint64]*goavro.Codec{}
	names := map[uint64]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		codec, err := goavro.NewCodec(string(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		fp := crc64Avro([]byte(specCanonicalForm(doc, "")))
		// goavro's Rabin agrees once the logical types are gone: its canonical form keeps
		// {"type":"long"} for a long that carries one, where the specification says "long".
		stripped, err := goavro.NewCodec(mustJSON(t, stripLogicalTypes(doc)))
		if err != nil {
			t.Fatal(err)
		}
		if stripped.Rabin != fp {
			t.Errorf("%s: goavro Rabin without logical types %016x, specification %016x", p, stripped.Rabin, fp)
		}
		if codec.Rabin != fp {
			t.Logf("%s: goavro's Rabin of the file as it is, %016x, is not the specification's %016x", filepath.Base(p), codec.Rabin, fp)
		}
		codecs[fp] = codec
		names[fp] = filepath.Base(p)
	}

	e := envelope("OrderCreated", examples[4].data)
	value, _, err := catalog(t).Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if value[0] != 0xC3 || value[1] != 0x01 {
		t.Fatalf("magic = % x, want c3 01", value[:2])
	}
	fp := binary.LittleEndian.Uint64(value[2:10])
	codec, ok := codecs[fp]
	if !ok {
		t.Fatalf("no .avsc file has fingerprint %016x", fp)
	}
	if names[fp] != "OrderCreated.v1.avsc" {
		t.Errorf("fingerprint names %s", names[fp])
	}
	native, rest, err := codec.NativeFromBinary(value[10:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v, %d bytes left", err, len(rest))
	}
	rec := native.(map[string]any)
	items := rec["items"].([]any)
	pen := items[1].(map[string]any)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"event_id", rec["event_id"], e.EventID.String()},
		{"stream_id", rec["stream_id"], e.StreamID},
		{"version", rec["version"], int64(3)},
		{"global_position", rec["global_position"], int64(1042)},
		{"recorded_at", rec["recorded_at"], e.RecordedAt},
		{"correlation_id", rec["correlation_id"], map[string]any{"string": e.CorrelationID}},
		{"causation_id", rec["causation_id"], nil},
		{"order_id", rec["order_id"], orderID},
		{"user_id", rec["user_id"], userID},
		{"items", len(items), 2},
		{"items[1].name", pen["name"], "A pen <blue> & cap"},
		{"items[1].price_cents", pen["price_cents"], int64(150)},
		{"items[1].quantity", pen["quantity"], int64(10)},
		{"total_cents", rec["total_cents"], int64(5498)},
	} {
		if mustJSON(t, c.got) != mustJSON(t, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	// And the other way round: the body goavro writes from the file is the body Encode wrote.
	body, err := codec.BinaryFromNative(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, value[10:]) {
		t.Errorf("goavro re-encoded % x,\n Encode wrote % x", body, value[10:])
	}
}

// specCanonicalForm is the Parsing Canonical Form of a schema parsed from JSON, by the rules
// of the Avro specification: [PRIMITIVES] primitive types as bare names, whatever other
// attributes they have; [FULLNAMES] full names, namespaces dropped; [STRIP] only name, type,
// fields, symbols, items, values and size kept; [ORDER] in that order; no whitespace.
func specCanonicalForm(v any, namespace string) string {
	primitive := func(s string) bool {
		switch s {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return true
		}
		return false
	}
	full := func(name, namespace string) string {
		if strings.Contains(name, ".") || namespace == "" {
			return name
		}
		return namespace + "." + name
	}
	switch x := v.(type) {
	case string:
		if primitive(x) {
			return `"` + x + `"`
		}
		return `"` + full(x, namespace) + `"`
	case []any:
		parts := make([]string, len(x))
		for i, b := range x {
			parts[i] = specCanonicalForm(b, namespace)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		typ, _ := x["type"].(string)
		if primitive(typ) {
			return `"` + typ + `"`
		}
		var parts []string
		if name, ok := x["name"].(string); ok {
			if ns, ok := x["namespace"].(string); ok {
				namespace = ns
			}
			name = full(name, namespace)
			if i := strings.LastIndex(name, "."); i >= 0 {
				namespace = name[:i]
			}
			parts = append(parts, `"name":"`+name+`"`)
		}
		switch typ {
		case "record", "enum", "array", "map", "fixed":
			parts = append(parts, `"type":"`+typ+`"`)
		default:
			parts = append(parts, `"type":`+specCanonicalForm(x["type"], namespace))
		}
		if fs, ok := x["fields"].([]any); ok {
			var fields []string
			for _, f := range fs {
				fm := f.(map[string]any)
				fields = append(fields, `{"name":"`+fm["name"].(string)+`","type":`+specCanonicalForm(fm["type"], namespace)+`}`)
			}
			parts = append(parts, `"fields":[`+strings.Join(fields, ",")+`]`)
		}
		if sy, ok := x["symbols"]; ok {
			b, _ := json.Marshal(sy)
			parts = append(parts, `"symbols":`+string(b))
		}
		for _, k := range []string{"items", "values"} {
			if it, ok := x[k]; ok {
				parts = append(parts, `"`+k+`":`+specCanonicalForm(it, namespace))
			}
		}
		if size, ok := x["size"].(float64); ok {
			parts = append(parts, `"size":`+strconv.FormatFloat(size, 'f', 0, 64))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	panic(fmt.Sprintf("not a schema: %v", v))
}

// stripLogicalTypes returns a copy of a schema without logicalType attributes.
func stripLogicalTypes(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, b := range x {
			out[i] = stripLogicalTypes(b)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, b := range x {
			if k != "logicalType" {
				out[k] = stripLogicalTypes(b)
			}
		}
		return out
	}
	return v
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain text 123", `quote " and \ backslash`, "tab\there", "<b>&amp;</b>",
		"ünïcödé", "\u2028\u2029", "\x00\x1f\x7f", string([]byte{0xff, 'a'}), "emoji 🎉"} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got, want := string(schema.AppendString(nil, s)), strings.TrimSuffix(b.String(), "\n"); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

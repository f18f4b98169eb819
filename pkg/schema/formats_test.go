package schema_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// format is one of the encodings beside Avro that name their schema by a header.
type format struct {
	name      string
	ext       string
	encode    func(c *schema.Catalog, e events.Envelope, version int) ([]byte, uint64, error)
	decode    func(c *schema.Catalog, value []byte, fp uint64) (schema.Decoded, error)
	resolve   func(r *schema.Resolver, value []byte, fp uint64) (schema.Decoded, error)
	encodeCur func(c *schema.Catalog, e events.Envelope) ([]byte, uint64, error)
}

var formats = []format{
	{"msgpack", "msgpack", (*schema.Catalog).EncodeMsgpackVersion, (*schema.Catalog).DecodeMsgpack,
		func(r *schema.Resolver, v []byte, fp uint64) (schema.Decoded, error) {
			return r.DecodeMsgpack(context.Background(), v, fp)
		}, (*schema.Catalog).EncodeMsgpack},
	{"protobuf", "pb", (*schema.Catalog).EncodeProtobufVersion, (*schema.Catalog).DecodeProtobuf,
		func(r *schema.Resolver, v []byte, fp uint64) (schema.Decoded, error) {
			return r.DecodeProtobuf(context.Background(), v, fp)
		}, (*schema.Catalog).EncodeProtobuf},
}

// Every example, written with its version, reads back as the current version, with the
// fingerprint of the version's Avro schema for the header.
func TestCatalog_Formats(t *testing.T) {
	c := catalog(t)
	for _, f := range formats {
		for _, ex := range examples {
			t.Run(fmt.Sprintf("%s/%s.v%d", f.name, ex.typ, ex.version), func(t *testing.T) {
				e := envelope(ex.typ, ex.data)
				value, fp, err := f.encode(c, e, ex.version)
				if err != nil {
					t.Fatal(err)
				}
				if in, _ := c.Schema(fp); in.Type != ex.typ || in.Version != ex.version {
					t.Errorf("fingerprint names %s v%d", in.Type, in.Version)
				}
				d, err := f.decode(c, value, fp)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				checkDecoded(t, d, e, ex.want)
				if d.WriterVersion != ex.version || d.Fingerprint != fp {
					t.Errorf("writer version %d, fingerprint %x", d.WriterVersion, d.Fingerprint)
				}
			})
		}
	}
}

// The MessagePack map has the JSON payload's fields, names and values, in the same order.
func TestCatalog_EncodeMsgpack_ShapeOfJSON(t *testing.T) {
	c := catalog(t)
	for _, ex := range current(t, c) {
		e := envelope(ex.typ, ex.data)
		mp, _, err := c.EncodeMsgpack(e)
		if err != nil {
			t.Fatal(err)
		}
		js, _, err := c.EncodeJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		var fromMsgpack, fromJSON any
		if err := msgpack.Unmarshal(mp, &fromMsgpack); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&fromJSON); err != nil {
			t.Fatal(err)
		}
		if got, want := normalize(fromMsgpack), normalize(fromJSON); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: msgpack map %v,\n JSON object %v", ex.typ, got, want)
		}
	}
}

// normalize makes every integer an int64.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, v := range x {
			out[k] = normalize(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = normalize(v)
		}
		return out
	case json.Number:
		i, _ := x.Int64()
		return i
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	}
	return v
}

// A value that does not fit its version's schema is malformed: the consumer dead-letters it.
func TestCatalog_DecodeMsgpack_ErrMalformed(t *testing.T) {
	c := catalog(t)
	e := envelope("OrderCreated", examples[4].data)
	_, fp, err := c.EncodeMsgpack(e)
	if err != nil {
		t.Fatal(err)
	}
	good := func() map[string]any {
		return map[string]any{"event_id": e.EventID.String(), "stream_id": e.StreamID, "version": 3, "global_position": 1042,
			"recorded_at": "2025-03-14T15:09:26.535897Z", "correlation_id": nil, "causation_id": nil,
			"order_id": orderID, "user_id": userID, "items": []any{}, "total_cents": 0}
	}
	with := func(k string, v any) []byte {
		m := good()
		m[k] = v
		b, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	without := func(k string) []byte {
		m := good()
		delete(m, k)
		b, _ := msgpack.Marshal(m)
		return b
	}
	ok, _ := msgpack.Marshal(good())
	if _, err := c.DecodeMsgpack(ok, fp); err != nil {
		t.Fatalf("the good map: %v", err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"UnknownField", with("coupon", "x"), "unknown field"},
		{"MissingField", without("user_id"), "user_id: missing"},
		{"FloatForLong", with("total_cents", 1.5), "total_cents: want an integer"},
		{"StringForLong", with("total_cents", "12"), "total_cents: want an integer"},
		{"LongForString", with("user_id", 7), "user_id: want a string"},
		{"BadUUID", with("event_id", "nope"), "not a UUID"},
		{"BadTimestamp", with("recorded_at", "yesterday"), "not an RFC 3339 time"},
		{"Binary", with("user_id", []byte("x")), "binary values"},
		{"ItemNotMap", with("items", []any{"x"}), "items[0]: want an object"},
		{"NotAMap", []byte{0x93, 1, 2, 3}, "want an object"},
		{"Trailing", append(slices.Clone(ok), 0xc0), "1 bytes after the value"},
		{"HugeArray", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, "an array of"},
		{"DuplicateKey", []byte{0x82, 0xa1, 'a', 1, 0xa1, 'a', 2}, `key "a" appears twice`},
		{"NotUTF8", with("user_id", string([]byte{0xff})), "not UTF-8"},
		{"Truncated", ok[:len(ok)-3], "invalid MessagePack"},
		{"Empty", nil, "invalid MessagePack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.DecodeMsgpack(tc.value, fp)
			if !errors.Is(err, schema.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrMalformed with %q", err, tc.want)
			}
		})
	}
}

func TestCatalog_DecodeProtobuf_ErrMalformed(t *testing.T) {
	c := catalog(t)
	e := envelope("UserCreated", examples[0].data)
	value, fp, err := c.EncodeProtobuf(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		want  string
	}{
		// Field 20, varint 1: a field UserCreated v1 does not have.
		{"UnknownField", append(slices.Clone(value), 0xa0, 0x01, 0x01), "fields that message UserCreated does not have"},
		// Field 8 (user_id, a string) as a varint.
		{"WrongWireType", append(slices.Clone(value), 0x40, 0x01), "fields that message UserCreated does not have"},
		{"Truncated", value[:len(value)-2], "invalid Protocol Buffers value"},
		// Field 1 (event_id) again, the last one counting: not a UUID.
		{"BadUUID", append(slices.Clone(value), 0x0a, 0x01, 'x'), "not a UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.DecodeProtobuf(tc.value, fp)
			if !errors.Is(err, schema.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrMalformed with %q", err, tc.want)
			}
		})
	}
	t.Run("ErrUnknownFingerprint", func(t *testing.T) {
		if _, err := c.DecodeProtobuf(value, 42); !errors.Is(err, schema.ErrUnknownFingerprint) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("ErrNoProtobuf", func(t *testing.T) {
		avroOnly, err := schema.Load(onlyAvro(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := avroOnly.EncodeProtobuf(e); !errors.Is(err, schema.ErrNoProtobuf) {
			t.Errorf("EncodeProtobuf: %v", err)
		}
		if _, err := avroOnly.DecodeProtobuf(value, fp); !errors.Is(err, schema.ErrNoProtobuf) {
			t.Errorf("DecodeProtobuf: %v", err)
		}
	})
}

// onlyAvro is the domain's schema files without the .proto ones.
func onlyAvro(tb testing.TB) fstest.MapFS {
	tb.Helper()
	out := fstest.MapFS{}
	for _, in := range catalog(tb).Schemas() {
		name := fmt.Sprintf("%s.v%d.avsc", in.Type, in.Version)
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "domain", "avro", name))
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: b}
	}
	return out
}

// A consumer whose catalog lacks the writer's version reads it through the catalog table, in
// both formats, as its own current version.
func TestResolver_Formats_NewerWriter(t *testing.T) {
	full := catalog(t)
	old, err := schema.Load(without(t, "UserProfileUpdated.v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	tbl := newTable(0, full)
	r := old.Resolver(tbl.lookup)
	e := envelope("UserProfileUpdated", `{"name":"Ada King","email":"ada@example.org"}`)
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			value, fp, err := f.encodeCur(full, e)
			if err != nil {
				t.Fatal(err)
			}
			d, err := f.resolve(r, value, fp)
			if err != nil {
				t.Fatal(err)
			}
			checkDecoded(t, d, e, `{"name":"Ada King"}`)
			if d.WriterVersion != 2 || d.Envelope.SchemaVersion != 1 {
				t.Errorf("writer v%d read as v%d, want v2 as v1", d.WriterVersion, d.Envelope.SchemaVersion)
			}
			if _, err := f.resolve(r, value, 42); !errors.Is(err, schema.ErrUnknownFingerprint) {
				t.Errorf("unknown fingerprint: %v", err)
			}
		})
	}
}

// The .proto files keep Protocol Buffers' evolution rules and match their .avsc.
func TestLoad_RefusesProto(t *testing.T) {
	v1 := avsc("Thing", `{"name":"a","type":"string"},{"name":"n","type":["null","long"],"default":null}`)
	v2 := avsc("Thing", `{"name":"a","type":"string"}`)
	proto := func(fields string, reserved ...string) *fstest.MapFile {
		s := "syntax = \"proto3\";\npackage dev.annals.events;\nmessage Thing {\n" +
			"  string event_id = 1; string stream_id = 2; int64 version = 3; int64 global_position = 4;\n" +
			"  int64 recorded_at = 5; optional string correlation_id = 6; optional string causation_id = 7;\n" +
			fields + "\n" + strings.Join(reserved, "\n") + "\n}\n"
		return &fstest.MapFile{Data: []byte(s)}
	}
	good1 := proto("string a = 8; optional int64 n = 9;")
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"Missing", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v2.avsc": v2, "Thing.v1.proto": good1}, "Thing.v2.proto is missing"},
		{"NoAvsc", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": good1, "Other.v1.proto": good1}, "no Other.v1.avsc"},
		{"TypeMismatch", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": proto("int64 a = 8; optional int64 n = 9;")}, "a: int64 for the record's string"},
		{"NotOptional", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": proto("string a = 8; int64 n = 9;")}, "want optional"},
		{"ExtraField", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": proto("string a = 8; optional int64 n = 9; bool b = 10;")}, "want one for each"},
		{"Package", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": {Data: bytes.Replace(good1.Data, []byte("dev.annals.events"), []byte("other"), 1)}}, `package "other"`},
		{"Syntax", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v1.proto": {Data: []byte("syntax = \"proto3\";\npackage dev.annals.events;\nmessage Thing {")}}, "protocompile"},
		{"DroppedNotReserved", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v2.avsc": v2, "Thing.v1.proto": good1, "Thing.v2.proto": proto("string a = 8;")},
			"field 9 is gone without `reserved 9;`"},
		{"NumberReused", fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v2.avsc": avsc("Thing", `{"name":"a","type":"string"},{"name":"m","type":["null","long"],"default":null}`),
			"Thing.v1.proto": good1, "Thing.v2.proto": proto("string a = 8; optional int64 m = 9;")}, "field 9 is renamed m"},
		{"Renumbered", fstest.MapFS{"Thing.v1.avsc": v1,
			"Thing.v2.avsc":  avsc("Thing", `{"name":"a","type":"string"},{"name":"n","type":["null","long"],"default":null},{"name":"c","type":["null","string"],"default":null}`),
			"Thing.v1.proto": good1, "Thing.v2.proto": proto("string a = 8; optional int64 n = 10; optional string c = 11;", "reserved 9;", `reserved "x";`)}, "field 9 is gone"},
		{"ReservedReused", fstest.MapFS{"Thing.v1.avsc": v2, "Thing.v2.avsc": v1,
			"Thing.v1.proto": proto("string a = 8;", "reserved 9;", `reserved "n";`), "Thing.v2.proto": good1}, "field number 9 was reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.LoadFS(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("DroppedAndReserved", func(t *testing.T) {
		files := fstest.MapFS{"Thing.v1.avsc": v1, "Thing.v2.avsc": v2, "Thing.v1.proto": good1,
			"Thing.v2.proto": proto("string a = 8;", "reserved 9;", `reserved "n";`)}
		if _, err := schema.LoadFS(files); err != nil {
			t.Error(err)
		}
	})
}

// TestGoldenFormats decodes MessagePack and Protocol Buffers values written by earlier
// builds, one for every version of every schema, and checks that the encodings do not drift,
// as TestGolden does for Avro. go test -update rewrites them, for a new version only.
func TestGoldenFormats(t *testing.T) {
	c := catalog(t)
	for _, f := range formats {
		dir := filepath.Join("testdata", "golden-"+f.name)
		var want []string
		for _, in := range c.Schemas() {
			want = append(want, fmt.Sprintf("%s.v%d.%s", in.Type, in.Version, f.ext))
		}
		if *update {
			for _, ex := range examples {
				value, _, err := f.encode(c, envelope(ex.typ, ex.data), ex.version)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s.v%d.%s", ex.typ, ex.version, f.ext)), value, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var have []string
		for _, e := range entries {
			have = append(have, e.Name())
		}
		if !slices.Equal(have, want) {
			t.Errorf("%s holds %v, want %v", dir, have, want)
		}
		for _, ex := range examples {
			t.Run(fmt.Sprintf("%s/%s.v%d", f.name, ex.typ, ex.version), func(t *testing.T) {
				golden, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.v%d.%s", ex.typ, ex.version, f.ext)))
				if err != nil {
					t.Fatalf("%v (go test -run TestGoldenFormats -update writes it)", err)
				}
				in, _ := c.Current(ex.typ)
				for _, s := range c.Schemas() {
					if s.Type == ex.typ && s.Version == ex.version {
						in = s
					}
				}
				e := envelope(ex.typ, ex.data)
				d, err := f.decode(c, golden, in.Fingerprint)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				checkDecoded(t, d, e, ex.want)
				value, _, err := f.encode(c, e, ex.version)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(value, golden) {
					t.Errorf("encoding drifted:\n now %s\n was %s", hex.EncodeToString(value), hex.EncodeToString(golden))
				}
			})
		}
	}
}

// The domain's .proto files load with its .avsc files.
func TestDomain_Protobuf(t *testing.T) {
	if _, _, err := domain.Catalog().EncodeProtobuf(envelope("OrderShipped", `{}`)); err != nil {
		t.Fatal(err)
	}
}

package schema_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/schema"
)

var eventTypes = []string{
	"UserCreated", "UserProfileUpdated", "UserDeactivated", "UserPersonalDataErased",
	"OrderCreated", "ItemAdded", "ItemRemoved", "OrderConfirmed", "OrderCancelled", "OrderShipped",
}

func TestLoad(t *testing.T) {
	c := catalog(t)
	var got []string
	for _, in := range c.Schemas() {
		got = append(got, in.Type+".v"+strconv.Itoa(in.Version))
		if in.FingerprintHex != schema.FormatFingerprint(in.Fingerprint) || len(in.FingerprintHex) != 16 {
			t.Errorf("%s v%d: fingerprint %d written %q", in.Type, in.Version, in.Fingerprint, in.FingerprintHex)
		}
		wantCurrent := in.Type != "UserProfileUpdated" || in.Version == 2
		if in.Current != wantCurrent {
			t.Errorf("%s v%d: current = %v, want %v", in.Type, in.Version, in.Current, wantCurrent)
		}
		if s, ok := c.Schema(in.Fingerprint); !ok || s != in {
			t.Errorf("Schema(%s) = %+v, %v; want %+v", in.FingerprintHex, s, ok, in)
		}
		if in.Current {
			if cur, ok := c.Current(in.Type); !ok || cur != in {
				t.Errorf("Current(%s) = %+v, %v", in.Type, cur, ok)
			}
		}
	}
	want := []string{"ItemAdded.v1", "ItemRemoved.v1", "OrderCancelled.v1", "OrderConfirmed.v1", "OrderCreated.v1",
		"OrderShipped.v1", "UserCreated.v1", "UserDeactivated.v1", "UserPersonalDataErased.v1", "UserProfileUpdated.v1", "UserProfileUpdated.v2"}
	if !slices.Equal(got, want) {
		t.Errorf("schemas = %v,\n want %v", got, want)
	}
	if _, ok := c.Current("Nope"); ok {
		t.Error("Current(Nope) found a schema")
	}
	first, second := domain.Catalog(), domain.Catalog()
	if first != second || len(first.Schemas()) != len(want) {
		t.Error("Default is not one loaded catalog")
	}
}

// TestFiles checks the .avsc files as files: names, namespace, the envelope, and a doc on
// every record and field.
func TestFiles(t *testing.T) {
	paths, err := filepath.Glob("../../internal/domain/avro/*.avsc")
	if err != nil || len(paths) == 0 {
		t.Fatalf("glob: %v %v", paths, err)
	}
	var envelope []any
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		typ, _, _ := strings.Cut(filepath.Base(p), ".")
		if rec["name"] != typ || rec["namespace"] != schema.Namespace || rec["type"] != "record" {
			t.Errorf("%s: name %v, namespace %v, type %v", p, rec["name"], rec["namespace"], rec["type"])
		}
		var walk func(where string, v any)
		walk = func(where string, v any) {
			switch x := v.(type) {
			case map[string]any:
				if x["type"] == "record" && x["doc"] == nil {
					t.Errorf("%s: record %v has no doc", where, x["name"])
				}
				if fs, ok := x["fields"].([]any); ok {
					for _, f := range fs {
						fm := f.(map[string]any)
						if d, _ := fm["doc"].(string); d == "" {
							t.Errorf("%s: field %v has no doc", where, fm["name"])
						}
						walk(where+"."+fm["name"].(string), fm["type"])
					}
				}
				if items, ok := x["items"]; ok {
					walk(where+"[]", items)
				}
			case []any:
				for _, b := range x {
					walk(where, b)
				}
			}
		}
		walk(p, rec)
		fields := rec["fields"].([]any)
		if envelope == nil {
			envelope = fields[:7]
		}
		if a, b := mustJSON(t, fields[:7]), mustJSON(t, envelope); a != b {
			t.Errorf("%s: envelope fields differ from the other files':\n%s\n%s", p, a, b)
		}
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// crc64Avro is the CRC-64-AVRO fingerprint as the Avro specification writes it out (section
// "Schema Fingerprints").
func crc64Avro(buf []byte) uint64 {
	const empty = 0xc15d213aa4d7a795
	var table [256]uint64
	for i := range table {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (empty & -(fp & 1))
		}
		table[i] = fp
	}
	fp := uint64(empty)
	for _, b := range buf {
		fp = (fp >> 8) ^ table[byte(fp)^b]
	}
	return fp
}

func TestFingerprint(t *testing.T) {
	// Vectors of the Avro project's schema tests.
	for _, tc := range []struct {
		schema string
		want   uint64
	}{{`"int"`, 8247732601305521295}, {`"string"`, 0x8f014872634503c7}} {
		if got := crc64Avro([]byte(tc.schema)); got != tc.want {
			t.Errorf("crc64Avro(%s) = %#x, want %#x", tc.schema, got, tc.want)
		}
	}
	c := catalog(t)
	for _, in := range c.Schemas() {
		if got := crc64Avro([]byte(in.Schema)); got != in.Fingerprint {
			t.Errorf("%s v%d: CRC-64-AVRO of the canonical form = %016x, catalog says %s", in.Type, in.Version, got, in.FingerprintHex)
		}
	}
	t.Run("Published", func(t *testing.T) {
		// The fingerprints of the published schemas, as Apache Avro's Java implementation
		// (SchemaNormalization.parsingFingerprint64) computes them from the .avsc files. A
		// published schema never changes: a change is a new version.
		published := map[string]uint64{
			"ItemAdded.v1": 0x240be75d84962695, "ItemRemoved.v1": 0xda94e8b905c9bbee,
			"OrderCancelled.v1": 0xd697600322640563, "OrderConfirmed.v1": 0xadeb56edc5930a9c,
			"OrderCreated.v1": 0xbbfdddc04922acd4, "OrderShipped.v1": 0x2251b7fab0ec892a,
			"UserCreated.v1": 0x8b2ced335bd2f45b, "UserDeactivated.v1": 0x0a411f6ed3fe6faa,
			"UserProfileUpdated.v1": 0x7c9c11359b443e45, "UserProfileUpdated.v2": 0xa77f28c0895afb1e,
			"UserPersonalDataErased.v1": 0x5835b28a72f96931,
		}
		for _, in := range c.Schemas() {
			key := in.Type + ".v" + strconv.Itoa(in.Version)
			if want, ok := published[key]; !ok || in.Fingerprint != want {
				t.Errorf("%s: fingerprint %s, published %016x", key, in.FingerprintHex, want)
			}
		}
	})
	t.Run("CanonicalForm", func(t *testing.T) {
		// The Parsing Canonical Form by the specification's rules: full names, attributes
		// in the order name, type, fields, items; doc, default and logicalType stripped;
		// primitive types as bare strings; no whitespace.
		env := `{"name":"event_id","type":"string"},{"name":"stream_id","type":"string"},` +
			`{"name":"version","type":"long"},{"name":"global_position","type":"long"},` +
			`{"name":"recorded_at","type":"long"},{"name":"correlation_id","type":["null","string"]},` +
			`{"name":"causation_id","type":["null","string"]}`
		want := map[string]string{
			"OrderShipped": `{"name":"dev.annals.events.OrderShipped","type":"record","fields":[` + env + `]}`,
			"ItemAdded": `{"name":"dev.annals.events.ItemAdded","type":"record","fields":[` + env +
				`,{"name":"item","type":{"name":"dev.annals.events.Item","type":"record","fields":[` +
				`{"name":"id","type":"string"},{"name":"name","type":"string"},` +
				`{"name":"price_cents","type":"long"},{"name":"quantity","type":"long"}]}}]}`,
		}
		for typ, w := range want {
			in, _ := c.Current(typ)
			if in.Schema != w {
				t.Errorf("%s:\n got %s\nwant %s", typ, in.Schema, w)
			}
		}
	})
}

func TestFingerprintFormat(t *testing.T) {
	for _, fp := range []uint64{0, 1, 0xc15d213aa4d7a795, math.MaxUint64} {
		s := schema.FormatFingerprint(fp)
		got, err := schema.ParseFingerprint(s)
		if err != nil || got != fp || len(s) != 16 || s != strings.ToLower(s) {
			t.Errorf("%d -> %q -> %d, %v", fp, s, got, err)
		}
		if got, err := schema.ParseFingerprint(strings.ToUpper(s)); err != nil || got != fp {
			t.Errorf("upper case %q: %d, %v", strings.ToUpper(s), got, err)
		}
	}
	for _, s := range []string{"", "c15d213aa4d7a79", "c15d213aa4d7a7950", "+15d213aa4d7a795", "0x5d213aa4d7a795", "g15d213aa4d7a795"} {
		if _, err := schema.ParseFingerprint(s); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted it", s)
		}
	}
}

// avsc builds a schema file of an event record with the envelope and the given data fields.
func avsc(name, fields string) *fstest.MapFile {
	env := `{"name":"event_id","type":{"type":"string","logicalType":"uuid"}},{"name":"stream_id","type":"string"},` +
		`{"name":"version","type":"long"},{"name":"global_position","type":"long"},` +
		`{"name":"recorded_at","type":{"type":"long","logicalType":"timestamp-micros"}},` +
		`{"name":"correlation_id","type":["null","string"],"default":null},{"name":"causation_id","type":["null","string"],"default":null}`
	if fields != "" {
		env += "," + fields
	}
	return &fstest.MapFile{Data: []byte(`{"type":"record","name":"` + name + `","namespace":"dev.annals.events","fields":[` + env + `]}`)}
}

func TestLoad_Refuses(t *testing.T) {
	good := avsc("Thing", `{"name":"a","type":"string"}`)
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"NoFiles", fstest.MapFS{}, "no .avsc files"},
		{"BadFileName", fstest.MapFS{"Thing.avsc": good}, "<Type>.v<N>.avsc"},
		{"NameMismatch", fstest.MapFS{"Other.v1.avsc": good}, "want a record named dev.annals.events.Other"},
		{"VersionGap", fstest.MapFS{"Thing.v1.avsc": good,
			"Thing.v3.avsc": avsc("Thing", `{"name":"a","type":"string"},{"name":"b","type":"long","default":1}`)}, "v2 is missing"},
		{"NoEnvelope", fstest.MapFS{"Thing.v1.avsc": {Data: []byte(`{"type":"record","name":"Thing","namespace":"dev.annals.events","fields":[{"name":"a","type":"string"}]}`)}},
			"envelope"},
		{"NewFieldWithoutDefault", fstest.MapFS{"Thing.v1.avsc": good,
			"Thing.v2.avsc": avsc("Thing", `{"name":"a","type":"string"},{"name":"b","type":"string"}`)},
			"field b is new and has no default"},
		{"TypeChange", fstest.MapFS{"Thing.v1.avsc": good, "Thing.v2.avsc": avsc("Thing", `{"name":"a","type":"long"}`)},
			"field a changes type from string to long"},
		{"UnsupportedType", fstest.MapFS{"Thing.v1.avsc": avsc("Thing", `{"name":"a","type":"double"}`)}, `type "double" is not supported`},
		{"UnsupportedUnion", fstest.MapFS{"Thing.v1.avsc": avsc("Thing", `{"name":"a","type":["string","long"]}`)}, "exactly one branch must be null"},
		{"UnsupportedLogicalType", fstest.MapFS{"Thing.v1.avsc": avsc("Thing", `{"name":"a","type":{"type":"int","logicalType":"date"}}`)}, "logical type date"},
		{"BadDefault", fstest.MapFS{"Thing.v1.avsc": avsc("Thing", `{"name":"a","type":"long","default":"x"}`)}, "default"},
		{"DuplicateField", fstest.MapFS{"Thing.v1.avsc": avsc("Thing", `{"name":"a","type":"string"},{"name":"a","type":"long"}`)}, "defined twice"},
		{"DuplicateKey", fstest.MapFS{"Thing.v1.avsc": {Data: []byte(`{"type":"record","type":"record"}`)}}, "appears twice"},
		{"SameFingerprint", fstest.MapFS{"Thing.v1.avsc": good, "Thing.v2.avsc": good}, "same fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.LoadFS(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		c, err := schema.LoadFS(fstest.MapFS{"Thing.v1.avsc": good,
			"Thing.v2.avsc": avsc("Thing", `{"name":"b","type":["null","long"],"default":null},{"name":"c","type":"long","default":7}`)})
		if err != nil {
			t.Fatal(err)
		}
		e := envelope("Thing", `{"a":"x"}`)
		v1, _, err := c.EncodeVersion(e, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Decode(v1)
		if err != nil {
			t.Fatal(err)
		}
		// a was dropped in v2; b and c take their defaults.
		if got, want := string(d.Envelope.Data), `{"b":null,"c":7}`; got != want || d.WriterVersion != 1 || d.Envelope.SchemaVersion != 2 {
			t.Errorf("decoded v1 as v2: data %s (want %s), writer v%d, schema version %d", got, want, d.WriterVersion, d.Envelope.SchemaVersion)
		}
	})
}

// TestLoad_OwnNamespace: a domain names its records in a namespace of its own, and keeps it
// across the versions of a type.
func TestLoad_OwnNamespace(t *testing.T) {
	in := func(ns string, f *fstest.MapFile) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(strings.Replace(string(f.Data), `"namespace":"dev.annals.events"`, `"namespace":"`+ns+`"`, 1))}
	}
	v1 := in("com.example.bank", avsc("Deposited", `{"name":"amount_cents","type":"long"}`))
	v2 := in("com.example.bank", avsc("Deposited", `{"name":"amount_cents","type":"long"},{"name":"memo","type":["null","string"],"default":null}`))
	c, err := schema.Load(fstest.MapFS{"Deposited.v1.avsc": v1, "Deposited.v2.avsc": v2})
	if err != nil {
		t.Fatal(err)
	}
	info, ok := c.Current("Deposited")
	if !ok || info.Version != 2 || !strings.Contains(info.Schema, `"name":"com.example.bank.Deposited"`) {
		t.Errorf("current Deposited: %+v, %v; want v2 named com.example.bank.Deposited", info, ok)
	}
	moved := in("com.example.other", avsc("Deposited", `{"name":"amount_cents","type":"long"},{"name":"memo","type":["null","string"],"default":null}`))
	_, err = schema.Load(fstest.MapFS{"Deposited.v1.avsc": v1, "Deposited.v2.avsc": moved})
	if err == nil || !strings.Contains(err.Error(), "keeps its full name") {
		t.Errorf("a type whose versions have two namespaces: err = %v, want one saying a type keeps its full name", err)
	}
}

// TestEmbedded: the catalog of a folder of embedded files is loaded once and shared; files
// that do not load panic with the reason.
func TestEmbedded(t *testing.T) {
	files := fstest.MapFS{"avro/Thing.v1.avsc": avsc("Thing", `{"name":"a","type":"string"}`)}
	catalog := schema.Embedded(files, "avro")
	c := catalog()
	if _, ok := c.Current("Thing"); !ok || catalog() != c {
		t.Errorf("Embedded: Thing %v, same catalog on the second call %v; want both", ok, catalog() == c)
	}
	broken := schema.Embedded(fstest.MapFS{"avro/Thing.avsc": avsc("Thing", "")}, "avro")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "<Type>.v<N>.avsc") {
			t.Errorf("Embedded of a misnamed file: recovered %v, want a panic naming the rule", r)
		}
	}()
	broken()
}

package schema_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/schema"
)

// without is the domain's schema files but those named (and the .proto of each .avsc named).
func without(tb testing.TB, names ...string) fs.FS {
	tb.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(domain.Schemas(), ".")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(strings.Join(names, " "), strings.Replace(e.Name(), ".proto", ".avsc", 1)) {
			continue
		}
		b, err := fs.ReadFile(domain.Schemas(), e.Name())
		if err != nil {
			tb.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	return out
}

// variant is a one-schema catalog of type typ with the envelope fields and then the given
// data fields (a JSON array), as a writer with another version of typ would have it.
func variant(tb testing.TB, typ, dataFields string) *schema.Catalog {
	tb.Helper()
	b, err := fs.ReadFile(domain.Schemas(), "UserDeactivated.v1.avsc")
	if err != nil {
		tb.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		tb.Fatal(err)
	}
	var data []any
	if err := json.Unmarshal([]byte(dataFields), &data); err != nil {
		tb.Fatal(err)
	}
	doc["name"] = typ
	doc["fields"] = append(doc["fields"].([]any)[:7], data...)
	b, err = json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := schema.LoadFS(fstest.MapFS{typ + ".v1.avsc": &fstest.MapFile{Data: b}})
	if err != nil {
		tb.Fatalf("variant of %s: %v", typ, err)
	}
	return c
}

// table is a stand-in for the catalog table: the rows of the catalogs given, each schema
// registered as the version given (a variant's v1 stands for a newer version).
type table struct {
	rows    map[uint64]schema.Registration
	err     error // what every lookup fails with, when set
	lookups atomic.Int64
}

func newTable(version int, cats ...*schema.Catalog) *table {
	t := &table{rows: map[uint64]schema.Registration{}}
	for _, c := range cats {
		for _, in := range c.Schemas() {
			v := in.Version
			if version > 0 {
				v = version
			}
			t.rows[in.Fingerprint] = schema.Registration{Fingerprint: in.Fingerprint, FingerprintHex: in.FingerprintHex,
				Type: in.Type, Version: v, Schema: in.Schema}
		}
	}
	return t
}

func (t *table) lookup(_ context.Context, fp uint64) (schema.Registration, error) {
	t.lookups.Add(1)
	if t.err != nil {
		return schema.Registration{}, t.err
	}
	r, ok := t.rows[fp]
	if !ok {
		return schema.Registration{}, schema.ErrUnknownFingerprint
	}
	return r, nil
}

// A writer deployed first writes versions the consumer's catalog lacks; the consumer reads
// them through the catalog table as its own version of the type.
func TestResolver_Decode(t *testing.T) {
	ctx := context.Background()
	full := catalog(t)
	old, err := schema.Load(without(t, "UserProfileUpdated.v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	itemAdded := variant(t, "ItemAdded", `[{"name":"item","type":{"type":"record","name":"Item","fields":[
		{"name":"id","type":"string"},{"name":"sku","type":["null","string"],"default":null},
		{"name":"name","type":"string"},{"name":"price_cents","type":"int"},{"name":"quantity","type":"long"}]}},
		{"name":"gift","type":"boolean","default":false},{"name":"tags","type":{"type":"array","items":"string"},"default":[]}]`)
	profile := variant(t, "UserProfileUpdated", `[{"name":"name","type":"string"}]`)
	refunded := variant(t, "OrderRefunded", `[{"name":"amount_cents","type":"long"},{"name":"note","type":["null","string"],"default":null}]`)
	tbl := newTable(0, full)
	for _, c := range []*schema.Catalog{itemAdded, profile} {
		for fp, r := range newTable(2, c).rows {
			tbl.rows[fp] = r
		}
	}
	for fp, r := range newTable(1, refunded).rows {
		tbl.rows[fp] = r
	}
	for _, tc := range []struct {
		name      string
		writer    *schema.Catalog
		typ, data string
		reader    *schema.Catalog
		want      string
		versions  [2]int // writer, reader
	}{
		{"NewerVersion", full, "UserProfileUpdated", `{"name":null,"email":"ada@example.org"}`, old,
			`{"name":null}`, [2]int{2, 1}},
		{"NestedFieldsPromotionAndDefaults", itemAdded, "ItemAdded",
			`{"item":{"id":"mug","sku":"M-1","name":"A mug","price_cents":899,"quantity":1},"gift":true,"tags":["a"]}`, full,
			`{"item":{"id":"mug","name":"A mug","price_cents":899,"quantity":1}}`, [2]int{2, 1}},
		{"IntoAUnion", profile, "UserProfileUpdated", `{"name":"Ada King"}`, old, `{"name":"Ada King"}`, [2]int{2, 1}},
		{"UnknownType", refunded, "OrderRefunded", `{"amount_cents":500,"note":"late"}`, full,
			`{"amount_cents":500,"note":"late"}`, [2]int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := envelope(tc.typ, tc.data)
			avro, fp, err := tc.writer.Encode(sent)
			if err != nil {
				t.Fatal(err)
			}
			js, _, err := tc.writer.EncodeJSON(sent)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tc.reader.Decode(avro); !errors.Is(err, schema.ErrUnknownFingerprint) {
				t.Fatalf("the reader's catalog decodes it on its own (%v): not a test of the lookup", err)
			}
			r := tc.reader.Resolver(tbl.lookup)
			for enc, decode := range map[string]func() (schema.Decoded, error){
				"avro": func() (schema.Decoded, error) { return r.Decode(ctx, avro) },
				"json": func() (schema.Decoded, error) { return r.DecodeJSON(ctx, js, fp) },
			} {
				got, err := decode()
				if err != nil {
					t.Fatalf("%s: %v", enc, err)
				}
				checkDecoded(t, got, sent, tc.want)
				if got.WriterVersion != tc.versions[0] || got.Envelope.SchemaVersion != tc.versions[1] || got.Fingerprint != fp {
					t.Errorf("%s: writer v%d, reader v%d, fingerprint %x; want v%d, v%d, %x", enc, got.WriterVersion,
						got.Envelope.SchemaVersion, got.Fingerprint, tc.versions[0], tc.versions[1], fp)
				}
			}
		})
	}
	t.Run("KnownFingerprintsNeedNoLookup", func(t *testing.T) {
		tbl := newTable(0)
		value, _, err := full.Encode(envelope("UserCreated", examples[0].data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := full.Resolver(tbl.lookup).Decode(ctx, value); err != nil || tbl.lookups.Load() != 0 {
			t.Errorf("Decode = %v after %d lookups; want nil after none", err, tbl.lookups.Load())
		}
	})
}

func TestResolver_Decode_Errors(t *testing.T) {
	ctx := context.Background()
	full := catalog(t)
	changedType := variant(t, "UserDeactivated", `[{"name":"reason","type":"long"}]`)
	nullable := variant(t, "OrderCancelled", `[{"name":"reason","type":["null","string"]}]`)
	encode := func(c *schema.Catalog, typ, data string) []byte {
		v, _, err := c.Encode(envelope(typ, data))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("ErrUnknownFingerprint", func(t *testing.T) {
		_, err := full.Resolver(newTable(0, full).lookup).Decode(ctx, encode(changedType, "UserDeactivated", `{"reason":1}`))
		if !errors.Is(err, schema.ErrUnknownFingerprint) {
			t.Errorf("Decode = %v, want ErrUnknownFingerprint", err)
		}
	})
	t.Run("ErrLookup", func(t *testing.T) {
		tbl := newTable(2, nullable)
		tbl.err = errors.New("connection refused")
		r := full.Resolver(tbl.lookup)
		value := encode(nullable, "OrderCancelled", `{"reason":"x"}`)
		if _, err := r.Decode(ctx, value); !errors.Is(err, schema.ErrLookup) || errors.Is(err, schema.ErrUnknownFingerprint) {
			t.Errorf("Decode = %v, want ErrLookup", err)
		}
		tbl.err = nil // the database is back: the failure was not kept
		if _, err := r.Decode(ctx, value); !errors.Is(err, schema.ErrIncompatible) {
			t.Errorf("Decode once the table answers = %v, want ErrIncompatible", err)
		}
	})
	t.Run("ErrIncompatible", func(t *testing.T) {
		for name, tc := range map[string]struct {
			c         *schema.Catalog
			typ, data string
			want      string
		}{
			"ChangedType":     {changedType, "UserDeactivated", `{"reason":7}`, "reason"},
			"NullableToPlain": {nullable, "OrderCancelled", `{"reason":null}`, "reason"},
		} {
			tbl := newTable(2, tc.c)
			r := full.Resolver(tbl.lookup)
			value := encode(tc.c, tc.typ, tc.data)
			_, err1 := r.Decode(ctx, value)
			_, err2 := r.Decode(ctx, value)
			if !errors.Is(err1, schema.ErrIncompatible) || !strings.Contains(err1.Error(), tc.want) || !errors.Is(err2, schema.ErrIncompatible) {
				t.Errorf("%s: Decode = %v, then %v; want ErrIncompatible naming %q", name, err1, err2, tc.want)
			}
			if n := tbl.lookups.Load(); n != 1 {
				t.Errorf("%s: %d lookups for two decodes; an incompatible schema is kept", name, n)
			}
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		tbl := newTable(2, changedType)
		for fp, r := range tbl.rows {
			r.Schema = strings.Replace(r.Schema, `"long"`, `"string"`, 1) // not the fingerprint's schema
			tbl.rows[fp] = r
		}
		_, err := full.Resolver(tbl.lookup).Decode(ctx, encode(changedType, "UserDeactivated", `{"reason":7}`))
		if !errors.Is(err, schema.ErrConflict) {
			t.Errorf("Decode = %v, want ErrConflict", err)
		}
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		widened := variant(t, "OrderCancelled", `[{"name":"reason","type":"string"},{"name":"note","type":"string"}]`)
		value := encode(widened, "OrderCancelled", `{"reason":"x","note":"y"}`)
		_, err := full.Resolver(newTable(2, widened).lookup).Decode(ctx, value[:len(value)-1])
		if !errors.Is(err, schema.ErrMalformed) {
			t.Errorf("Decode of a truncated value = %v, want ErrMalformed", err)
		}
	})
}

func TestCatalog_CheckCompatibility(t *testing.T) {
	if err := catalog(t).CheckCompatibility(); err != nil {
		t.Errorf("the domain's schemas: %v", err)
	}
	// Version 2 drops a field without a default: Load takes it (v1 events read as v2), but a
	// consumer still on v1 cannot read v2 events.
	b, err := fs.ReadFile(domain.Schemas(), "UserDeactivated.v1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["fields"] = doc["fields"].([]any)[:7]
	v2, _ := json.Marshal(doc)
	c, err := schema.LoadFS(fstest.MapFS{
		"UserDeactivated.v1.avsc": &fstest.MapFile{Data: b},
		"UserDeactivated.v2.avsc": &fstest.MapFile{Data: v2},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckCompatibility()
	if !errors.Is(err, schema.ErrIncompatible) || !strings.Contains(err.Error(), "UserDeactivated v1 cannot read v2") ||
		!strings.Contains(err.Error(), "reason") || strings.Contains(err.Error(), "v2 cannot read v1") {
		t.Errorf("CheckCompatibility = %v; want v1 unable to read v2 for want of reason", err)
	}
}

// The same through the catalog table itself: the writer registered its schemas, the consumer
// has an older catalog.
func TestResolver_CatalogTable(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	full := catalog(t)
	if err := full.Register(ctx, pool); err != nil {
		t.Fatal(err)
	}
	old, err := schema.Load(without(t, "UserProfileUpdated.v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	sent := envelope("UserProfileUpdated", `{"name":"Ada King","email":"ada@example.org"}`)
	value, _, err := full.Encode(sent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := old.Resolver(schema.TableLookup(pool)).Decode(ctx, value)
	if err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, got, sent, `{"name":"Ada King"}`)
	unknown, _, err := variant(t, "UserProfileUpdated", `[{"name":"name","type":"string"}]`).Encode(envelope("UserProfileUpdated", `{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Resolver(schema.TableLookup(pool)).Decode(ctx, unknown); !errors.Is(err, schema.ErrUnknownFingerprint) {
		t.Errorf("a fingerprint the table lacks: %v, want ErrUnknownFingerprint", err)
	}
}

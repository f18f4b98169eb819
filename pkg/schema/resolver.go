package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// ErrLookup: the catalog table could not be read (the database is down, say). It is not the
// value's fault: the same value may decode once the table answers.
var ErrLookup = errors.New("cannot look up the schema")

// LookupFunc returns the catalog table's row with the given fingerprint, or an error wrapping
// ErrUnknownFingerprint when there is none. TableLookup reads annals_schemas.
type LookupFunc func(ctx context.Context, fingerprint uint64) (Registration, error)

// TableLookup is the LookupFunc of the catalog table in db.
func TableLookup(db DB) LookupFunc {
	return func(ctx context.Context, fp uint64) (Registration, error) { return Lookup(ctx, db, fp) }
}

// Resolver decodes values as Catalog.Decode and Catalog.DecodeJSON do, and also values written
// with a schema the catalog does not hold: that of a writer deployed before this consumer,
// with a newer version of a type. It fetches such a schema by its fingerprint (LookupFunc,
// from the catalog table that writers register their schemas in), checks that it resolves
// to the reader's version of the type under the Avro specification's rules, keeps it, and
// reads the value with it as the type's current version. A type the catalog does not know
// at all is read as the writer's schema has it.
//
// Errors are those of Decode and DecodeJSON, and: a fingerprint the table does not hold
// either wraps ErrUnknownFingerprint (it is not kept, as the writer's registration may land
// later); a failure to read the table wraps ErrLookup; a writer's schema that does not
// resolve to the reader's wraps ErrIncompatible; a row whose schema does not have its
// fingerprint, or is not an event record, wraps ErrConflict. A Resolver is safe for
// concurrent use.
type Resolver struct {
	cat    *Catalog
	lookup LookupFunc
	mu     sync.RWMutex
	known  map[uint64]*writerSchema
}

// writerSchema is a writer's schema from the catalog table, or why it cannot be read.
type writerSchema struct {
	typ         string
	version     int
	fingerprint uint64
	root        *node // the writer's record, with the envelope's logical types
	codec       *goavro.Codec
	reader      *node // the reader's current version of the type, or root
	readerVer   int
	err         error
}

// Resolver returns a Resolver of c that looks up unknown fingerprints with lookup.
func (c *Catalog) Resolver(lookup LookupFunc) *Resolver {
	return &Resolver{cat: c, lookup: lookup, known: map[uint64]*writerSchema{}}
}

// Decode reads an Avro single-object encoded value, as Catalog.Decode does, fetching the
// writer's schema when the catalog lacks it.
func (r *Resolver) Decode(ctx context.Context, value []byte) (Decoded, error) {
	fp, err := fingerprintOf(value)
	if err != nil {
		return Decoded{}, err
	}
	if _, ok := r.cat.byFingerprint[fp]; ok {
		return r.cat.Decode(value)
	}
	w, err := r.writer(ctx, fp)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode: %w", err)
	}
	body := value[headerLen:]
	rest, err := scan(w.root, body, "")
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d bytes after the record", len(rest))
	}
	if err != nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
	}
	native, _, err := w.codec.NativeFromBinary(body)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
	}
	return r.decoded(w, native)
}

// DecodeJSON reads a value EncodeJSON wrote, as Catalog.DecodeJSON does, fetching the
// writer's schema when the catalog lacks it.
func (r *Resolver) DecodeJSON(ctx context.Context, value []byte, fingerprint uint64) (Decoded, error) {
	if _, ok := r.cat.byFingerprint[fingerprint]; ok {
		return r.cat.DecodeJSON(value, fingerprint)
	}
	w, err := r.writer(ctx, fingerprint)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode: %w", err)
	}
	doc, err := parseJSON(value)
	if err == nil {
		var native any
		if native, err = fromJSON(w.root, doc, ""); err == nil {
			return r.decoded(w, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
}

func (r *Resolver) decoded(w *writerSchema, native any) (Decoded, error) {
	rec, err := resolveValue(w.root, w.reader, native, "")
	if err != nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
	}
	return r.cat.envelope(w.typ, w.version, w.fingerprint, w.reader, w.readerVer, rec)
}

// writer returns the writer's schema of fp, from memory or from the lookup.
func (r *Resolver) writer(ctx context.Context, fp uint64) (*writerSchema, error) {
	r.mu.RLock()
	w, ok := r.known[fp]
	r.mu.RUnlock()
	if !ok {
		if r.lookup == nil {
			return nil, fmt.Errorf("%w: %s", ErrUnknownFingerprint, FormatFingerprint(fp))
		}
		reg, err := r.lookup(ctx, fp)
		switch {
		case errors.Is(err, ErrUnknownFingerprint):
			return nil, fmt.Errorf("%w: %s is in neither the catalog nor the catalog table", ErrUnknownFingerprint, FormatFingerprint(fp))
		case err != nil:
			return nil, fmt.Errorf("%w %s: %w", ErrLookup, FormatFingerprint(fp), err)
		}
		w = r.cat.writerSchema(fp, reg)
		r.mu.Lock()
		r.known[fp] = w
		r.mu.Unlock()
	}
	return w, w.err
}

// writerSchema reads a row of the catalog table and resolves it to c's version of its type.
func (c *Catalog) writerSchema(fp uint64, reg Registration) *writerSchema {
	w := &writerSchema{typ: reg.Type, version: reg.Version, fingerprint: fp}
	fail := func(sentinel error, format string, args ...any) *writerSchema {
		w.err = fmt.Errorf("%w: %s v%d (fingerprint %s) from the catalog table: %s",
			sentinel, reg.Type, reg.Version, FormatFingerprint(fp), fmt.Sprintf(format, args...))
		return w
	}
	root, err := parseSchema([]byte(reg.Schema))
	if err != nil {
		return fail(ErrConflict, "%v", err)
	}
	codec, err := goavro.NewCodec(reg.Schema)
	if err != nil {
		return fail(ErrConflict, "goavro: %v", err)
	}
	if canonicalForm(root) != reg.Schema || codec.Rabin != fp {
		return fail(ErrConflict, "the schema is not in canonical form or does not have the fingerprint")
	}
	if root.kind != kindRecord || (root.name != reg.Type && !strings.HasSuffix(root.name, "."+reg.Type)) {
		return fail(ErrConflict, "want a record named %s, got %s", reg.Type, describe(root))
	}
	// The canonical form drops logical types; the envelope's are known.
	for i, logical := range map[int]string{0: "uuid", 4: "timestamp-micros"} {
		if i < len(root.fields) && root.fields[i].typ.kind == logicalTypes[logical] {
			root.fields[i].typ.logical = logical
		}
	}
	if err := checkEnvelope(root); err != nil {
		return fail(ErrConflict, "%v", err)
	}
	w.root, w.codec, w.reader, w.readerVer = root, codec, root, reg.Version
	if t, ok := c.types[reg.Type]; ok {
		cur := t.current()
		if err := resolves(root, cur.root, ""); err != nil {
			return fail(ErrIncompatible, "cannot be read as v%d: %v", cur.version, err)
		}
		w.reader, w.readerVer = cur.root, cur.version
	}
	return w
}

// fingerprintOf reads the fingerprint of a single-object encoded value.
func fingerprintOf(value []byte) (uint64, error) {
	if len(value) < 2 || value[0] != magic0 || value[1] != magic1 {
		return 0, fmt.Errorf("decode: %w: does not start with C3 01", ErrNotSingleObject)
	}
	if len(value) < headerLen {
		return 0, fmt.Errorf("decode: %w: header of %d bytes, want %d", ErrNotSingleObject, len(value), headerLen)
	}
	return binary.LittleEndian.Uint64(value[2:headerLen]), nil
}

package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Namespace is the Avro namespace of the reference domain's event records. A domain of
// another team may name its records in a namespace of its own; every version of a type keeps
// the type's full name.
const Namespace = "dev.annals.events"

// Content types of event values, for the content-type header.
const (
	// ContentTypeAvro is an Avro single-object encoded value: C3 01, the 8-byte little-endian
	// CRC-64-AVRO fingerprint of the writer's schema, the Avro binary body. (The Avro
	// specification's avro/binary names a bare binary body without that header, hence a
	// name of its own.)
	ContentTypeAvro = "application/vnd.apache.avro+binary"
	// ContentTypeJSON is the same record as a plain JSON object (see Catalog.EncodeJSON).
	ContentTypeJSON = "application/json"
	// ContentTypeMsgpack is the same record as a MessagePack map of the JSON object's fields
	// (see Catalog.EncodeMsgpack).
	ContentTypeMsgpack = "application/msgpack"
	// ContentTypeProtobuf is the same record as the Protocol Buffers message of the version's
	// .proto file (see Catalog.EncodeProtobuf).
	ContentTypeProtobuf = "application/x-protobuf"
)

// Errors of the catalog and the codecs. Classify with errors.Is and errors.As (*FieldError).
var (
	// ErrUnknownType: the catalog has no schema for the event type.
	ErrUnknownType = errors.New("no schema for this event type")
	// ErrUnknownFingerprint: no schema of the catalog (or row of the catalog table) has the
	// fingerprint.
	ErrUnknownFingerprint = errors.New("unknown schema fingerprint")
	// ErrNotSingleObject: the value does not start with the single-object header (C3 01 and
	// an 8-byte fingerprint).
	ErrNotSingleObject = errors.New("not an Avro single-object encoded value")
	// ErrMalformed: the value's body does not match the schema its fingerprint names.
	ErrMalformed = errors.New("malformed value")
	// ErrConflict: the catalog table holds a fingerprint or a (type, version) with another
	// meaning than this catalog gives it.
	ErrConflict = errors.New("schema catalog conflict")
)

// FieldError: an event's data does not fit its schema. Field is the path of the offending
// value, such as "items[2].price_cents", or "" for the data as a whole.
type FieldError struct {
	Type    string
	Version int
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s v%d: %s", e.Type, e.Version, e.Problem)
	}
	return fmt.Sprintf("%s v%d: field %s: %s", e.Type, e.Version, e.Field, e.Problem)
}

func fieldError(v *version, err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		return &FieldError{Type: v.typ, Version: v.version, Field: pe.path, Problem: pe.msg}
	}
	return &FieldError{Type: v.typ, Version: v.version, Problem: err.Error()}
}

// Info describes one schema of the catalog.
type Info struct {
	Type    string
	Version int
	// Fingerprint is the CRC-64-AVRO fingerprint of Schema; FingerprintHex writes it as 16
	// lower-case hex digits (FormatFingerprint).
	Fingerprint    uint64
	FingerprintHex string
	// Schema is the schema's Parsing Canonical Form: the JSON the fingerprint is taken of,
	// without docs, defaults and logical types.
	Schema string
	// Current marks the type's newest version, the one Encode writes.
	Current bool
}

// FormatFingerprint writes a fingerprint as 16 lower-case hex digits, most significant first
// (the number, not the little-endian bytes of the single-object header).
func FormatFingerprint(fp uint64) string { return fmt.Sprintf("%016x", fp) }

// ParseFingerprint reads the 16 hex digits FormatFingerprint writes (either case).
func ParseFingerprint(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("fingerprint %q: want 16 hex digits", s)
	}
	fp, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("fingerprint %q: want 16 hex digits", s)
	}
	return fp, nil
}

// version is one schema of one event type.
type version struct {
	typ         string
	version     int
	fingerprint uint64
	canonical   string
	codec       *goavro.Codec
	root        *node
	current     bool
	// proto is the version's Protocol Buffers message, when the catalog has .proto files.
	proto protoreflect.MessageDescriptor
}

// eventType holds the versions of one event type, versions[i] being version i+1.
type eventType struct {
	versions []*version
}

func (t *eventType) current() *version { return t.versions[len(t.versions)-1] }

// Catalog holds the event schemas: for every event type each version's codec, canonical form
// and fingerprint, the newest version being the current one. It is immutable and safe for
// concurrent use.
type Catalog struct {
	types         map[string]*eventType
	byFingerprint map[uint64]*version
	infos         []Info
	protobuf      bool
}

// Load reads the schemas of a domain's events: every file <Type>.v<N>.avsc at the root of fsys
// (use fs.Sub for a folder of an embed.FS). It checks the catalog they make: each file is a
// record named after its type (in Namespace, in a namespace of the domain's own, or in none)
// that starts with the envelope fields, the versions of a type run from 1 without gaps and keep
// one full name, every older version can be read as the current one, and no two schemas share
// a fingerprint. Parsing takes a few milliseconds; a program loads its catalog once and shares
// it.
func Load(fsys fs.FS) (*Catalog, error) { return load(fsys) }

var fileName = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*)\.v([1-9][0-9]{0,5})\.avsc$`)

func load(fsys fs.FS) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	c := &Catalog{types: map[string]*eventType{}, byFingerprint: map[uint64]*version{}}
	found := map[string]map[int]*version{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".avsc" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("load schemas: file %s: want <Type>.v<N>.avsc", e.Name())
		}
		n, _ := strconv.Atoi(m[2])
		v, err := loadFile(fsys, e.Name(), m[1], n)
		if err != nil {
			return nil, fmt.Errorf("load schemas: %s: %w", e.Name(), err)
		}
		if other, dup := c.byFingerprint[v.fingerprint]; dup {
			return nil, fmt.Errorf("load schemas: %s v%d and %s v%d have the same fingerprint %s",
				other.typ, other.version, v.typ, v.version, FormatFingerprint(v.fingerprint))
		}
		c.byFingerprint[v.fingerprint] = v
		if found[v.typ] == nil {
			found[v.typ] = map[int]*version{}
		}
		found[v.typ][v.version] = v
	}
	if len(found) == 0 {
		return nil, errors.New("load schemas: no .avsc files")
	}
	for typ, byVersion := range found {
		t := &eventType{}
		for i := 1; i <= len(byVersion); i++ {
			v, ok := byVersion[i]
			if !ok {
				return nil, fmt.Errorf("load schemas: %s: versions must run 1, 2, ... without gaps; v%d is missing", typ, i)
			}
			t.versions = append(t.versions, v)
		}
		cur := t.current()
		cur.current = true
		for _, v := range t.versions {
			if v.root.name != cur.root.name {
				return nil, fmt.Errorf("load schemas: %s v%d is the record %s, v%d the record %s: every version of a type keeps its full name",
					typ, v.version, v.root.name, cur.version, cur.root.name)
			}
		}
		for _, v := range t.versions[:len(t.versions)-1] {
			if err := checkUpgrade(v.root, cur.root); err != nil {
				return nil, fmt.Errorf("load schemas: %s v%d cannot be read as v%d: %w", typ, v.version, cur.version, err)
			}
		}
		c.types[typ] = t
		for _, v := range t.versions {
			c.infos = append(c.infos, Info{
				Type: v.typ, Version: v.version, Fingerprint: v.fingerprint,
				FingerprintHex: FormatFingerprint(v.fingerprint), Schema: v.canonical, Current: v.current,
			})
		}
	}
	slices.SortFunc(c.infos, func(a, b Info) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	if err := c.loadProtos(fsys); err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	return c, nil
}

func loadFile(fsys fs.FS, name, typ string, n int) (*version, error) {
	doc, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	root, err := parseSchema(doc)
	if err != nil {
		return nil, err
	}
	if root.kind != kindRecord || (root.name != typ && !strings.HasSuffix(root.name, "."+typ)) {
		return nil, fmt.Errorf("want a record named %s.%s, or %s in a namespace of the domain's own or none, got %s", Namespace, typ, typ, describe(root))
	}
	if err := checkEnvelope(root); err != nil {
		return nil, err
	}
	codec, err := goavro.NewCodec(string(doc))
	if err != nil {
		return nil, fmt.Errorf("goavro: %w", err)
	}
	// goavro's own canonical form of a schema keeps a primitive type that carries a logical
	// type as an object ({"type":"long"} for a timestamp-micros), so its Rabin fingerprint
	// differs from the one the Avro specification, and every other implementation, computes.
	// The canonical form is therefore written here, and goavro only fingerprints it: for a
	// schema already in canonical form, goavro's canonical form is the schema itself.
	canonical := canonicalForm(root)
	pcf, err := goavro.NewCodec(canonical)
	if err != nil || pcf.CanonicalSchema() != canonical {
		return nil, fmt.Errorf("goavro does not read the canonical form %s as itself (%v)", canonical, err)
	}
	return &version{
		typ: typ, version: n, root: root, codec: codec,
		fingerprint: pcf.Rabin, canonical: canonical,
	}, nil
}

// Schemas lists every schema of the catalog, by type and version.
func (c *Catalog) Schemas() []Info { return slices.Clone(c.infos) }

// Current describes the current schema of an event type.
func (c *Catalog) Current(eventType string) (Info, bool) {
	t, ok := c.types[eventType]
	if !ok {
		return Info{}, false
	}
	return c.info(t.current()), true
}

// Schema describes the schema with the given fingerprint.
func (c *Catalog) Schema(fingerprint uint64) (Info, bool) {
	v, ok := c.byFingerprint[fingerprint]
	if !ok {
		return Info{}, false
	}
	return c.info(v), true
}

func (c *Catalog) info(v *version) Info {
	i, _ := slices.BinarySearchFunc(c.infos, v, func(in Info, v *version) int {
		if c := strings.Compare(in.Type, v.typ); c != 0 {
			return c
		}
		return in.Version - v.version
	})
	return c.infos[i]
}

func (c *Catalog) lookupType(eventType string) (*eventType, error) {
	t, ok := c.types[eventType]
	if !ok {
		return nil, fmt.Errorf("event type %q: %w", eventType, ErrUnknownType)
	}
	return t, nil
}

// Embedded returns the catalog of the schemas in folder dir of fsys, a domain's embedded
// files, loaded on the first call and shared by every later one. The files are fixed at build
// time and the domain's tests load them, so a catalog that does not load is a programming
// error: the call panics with the reason.
func Embedded(fsys fs.FS, dir string) func() *Catalog {
	return sync.OnceValue(func() *Catalog {
		sub, err := fs.Sub(fsys, dir)
		if err == nil {
			var c *Catalog
			if c, err = Load(sub); err == nil {
				return c
			}
		}
		panic("schema: the embedded schemas in " + dir + " do not load: " + err.Error())
	})
}

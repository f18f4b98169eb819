package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// kind is an Avro type this package can convert between JSON and Avro values.
type kind uint8

const (
	kindNull kind = iota
	kindBoolean
	kindInt
	kindLong
	kindString
	kindRecord
	kindArray
	kindUnion
)

var primitives = map[string]kind{
	"null": kindNull, "boolean": kindBoolean, "int": kindInt, "long": kindLong, "string": kindString,
}

var kindNames = [...]string{"null", "boolean", "int", "long", "string", "record", "array", "union"}

func (k kind) String() string { return kindNames[k] }

// node is one type of a parsed schema.
type node struct {
	kind kind
	// logical is the logical type: "uuid" on a string, "timestamp-micros" on a long, else "".
	logical string
	// name is a record's full name.
	name string
	// fields and index are a record's fields and their positions by name.
	fields []*field
	index  map[string]int
	// items is an array's item type.
	items *node
	// branches are a union's two branches, one of them null; value is the other one's index,
	// and key names it in goavro's native form of a union ({key: value}).
	branches [2]*node
	value    int
	key      string
}

// field is one field of a record.
type field struct {
	name       string
	doc        string
	typ        *node
	hasDefault bool
	def        any // the default as a goavro native value
}

var avroName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// logicalTypes are the logical types this package knows, by the type they annotate.
var logicalTypes = map[string]kind{"uuid": kindString, "timestamp-micros": kindLong}

// parser turns a schema's JSON into nodes. It supports what the event schemas use and
// refuses everything else by name, so that a schema never means something the converters do
// not implement.
type parser struct {
	names map[string]bool // record names defined so far
}

func parseSchema(doc []byte) (*node, error) {
	v, err := parseJSON(doc)
	if err != nil {
		return nil, err
	}
	p := &parser{names: map[string]bool{}}
	return p.parse(v, "")
}

func (p *parser) parse(v any, namespace string) (*node, error) {
	switch t := v.(type) {
	case string:
		k, ok := primitives[t]
		if !ok {
			return nil, fmt.Errorf("type %q is not supported: use null, boolean, int, long, string, a record, an array or a union of null with one of those (named references are not supported either)", t)
		}
		return &node{kind: k}, nil
	case []any:
		return p.union(t, namespace)
	case map[string]any:
		return p.object(t, namespace)
	}
	return nil, fmt.Errorf("a type must be a string, an object or an array, not %s", jsonKind(v))
}

func (p *parser) union(branches []any, namespace string) (*node, error) {
	if len(branches) != 2 {
		return nil, fmt.Errorf("union %v: only unions of null with one other type are supported", branches)
	}
	n := &node{kind: kindUnion}
	nulls := 0
	for i, b := range branches {
		bn, err := p.parse(b, namespace)
		if err != nil {
			return nil, err
		}
		switch {
		case bn.kind == kindNull:
			nulls++
		case bn.kind == kindUnion:
			return nil, errors.New("a union may not hold a union")
		case bn.logical != "":
			return nil, fmt.Errorf("union: a %s with logical type %s is not supported in a union", bn.kind, bn.logical)
		default:
			n.value = i
			n.key = bn.kind.String()
			if bn.kind == kindRecord {
				n.key = bn.name
			}
		}
		n.branches[i] = bn
	}
	if nulls != 1 {
		return nil, fmt.Errorf("union %v: exactly one branch must be null", branches)
	}
	return n, nil
}

func (p *parser) object(m map[string]any, namespace string) (*node, error) {
	t, ok := m["type"].(string)
	if !ok {
		return nil, fmt.Errorf("schema object %v: type must be a type name", m["type"])
	}
	var n *node
	switch t {
	case "record":
		return p.record(m, namespace)
	case "array":
		items, ok := m["items"]
		if !ok {
			return nil, errors.New("array without items")
		}
		it, err := p.parse(items, namespace)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		n = &node{kind: kindArray, items: it}
	default:
		var err error
		if n, err = p.parse(t, namespace); err != nil {
			return nil, err
		}
	}
	if lt, ok := m["logicalType"]; ok {
		s, _ := lt.(string)
		if want, known := logicalTypes[s]; !known || want != n.kind {
			return nil, fmt.Errorf("logical type %v on %s is not supported (supported: uuid on string, timestamp-micros on long)", lt, n.kind)
		}
		n.logical = s
	}
	return n, nil
}

func (p *parser) record(m map[string]any, namespace string) (*node, error) {
	name, _ := m["name"].(string)
	if ns, ok := m["namespace"].(string); ok {
		namespace = ns
	}
	full := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		namespace, name = name[:i], name[i+1:]
	} else if namespace != "" {
		full = namespace + "." + name
	}
	if !avroName.MatchString(name) {
		return nil, fmt.Errorf("record name %q is not a valid Avro name", name)
	}
	if namespace != "" {
		for part := range strings.SplitSeq(namespace, ".") {
			if !avroName.MatchString(part) {
				return nil, fmt.Errorf("record %s: namespace %q is not a valid Avro namespace", name, namespace)
			}
		}
	}
	if p.names[full] {
		return nil, fmt.Errorf("record %s is defined twice", full)
	}
	p.names[full] = true
	fs, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("record %s: fields must be an array", full)
	}
	n := &node{kind: kindRecord, name: full, index: map[string]int{}}
	for _, fv := range fs {
		fm, ok := fv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s: a field must be an object", full)
		}
		f := &field{}
		f.name, _ = fm["name"].(string)
		f.doc, _ = fm["doc"].(string)
		if !avroName.MatchString(f.name) {
			return nil, fmt.Errorf("record %s: field name %q is not a valid Avro name", full, f.name)
		}
		if _, dup := n.index[f.name]; dup {
			return nil, fmt.Errorf("record %s: field %s is defined twice", full, f.name)
		}
		t, ok := fm["type"]
		if !ok {
			return nil, fmt.Errorf("record %s: field %s has no type", full, f.name)
		}
		var err error
		if f.typ, err = p.parse(t, namespace); err != nil {
			return nil, fmt.Errorf("record %s: field %s: %w", full, f.name, err)
		}
		if d, ok := fm["default"]; ok {
			// The default of a union is a value of its first branch.
			dt := f.typ
			if dt.kind == kindUnion {
				dt = dt.branches[0]
			}
			if f.def, err = fromJSON(dt, d, ""); err != nil {
				return nil, fmt.Errorf("record %s: field %s: default: %w", full, f.name, err)
			}
			if f.typ.kind == kindUnion && f.def != nil {
				f.def = map[string]any{f.typ.key: f.def}
			}
			f.hasDefault = true
		}
		n.index[f.name] = len(n.fields)
		n.fields = append(n.fields, f)
	}
	return n, nil
}

// sameType reports whether a and b are the same type: a value written with one reads with the
// other unchanged.
func sameType(a, b *node) bool {
	if a.kind != b.kind || a.logical != b.logical || a.name != b.name {
		return false
	}
	switch a.kind {
	case kindRecord:
		if len(a.fields) != len(b.fields) {
			return false
		}
		for i, f := range a.fields {
			if f.name != b.fields[i].name || !sameType(f.typ, b.fields[i].typ) {
				return false
			}
		}
	case kindArray:
		return sameType(a.items, b.items)
	case kindUnion:
		return sameType(a.branches[0], b.branches[0]) && sameType(a.branches[1], b.branches[1])
	}
	return true
}

// canonicalForm writes n in the Avro specification's Parsing Canonical Form: primitive types
// as bare names (logical types dropped), records as name (the full name), type and fields,
// fields as name and type, arrays as type and items, no docs, defaults or whitespace. Names
// are plain Avro names, so no string needs escaping.
func canonicalForm(n *node) string {
	switch n.kind {
	case kindRecord:
		var b strings.Builder
		b.WriteString(`{"name":"` + n.name + `","type":"record","fields":[`)
		for i, f := range n.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":"` + f.name + `","type":` + canonicalForm(f.typ) + `}`)
		}
		b.WriteString(`]}`)
		return b.String()
	case kindArray:
		return `{"type":"array","items":` + canonicalForm(n.items) + `}`
	case kindUnion:
		return `[` + canonicalForm(n.branches[0]) + `,` + canonicalForm(n.branches[1]) + `]`
	}
	return `"` + n.kind.String() + `"`
}

// envelopeFields are the fields every event record starts with, in this order.
var envelopeFields = []struct {
	name, typ string
}{
	{"event_id", "string/uuid"},
	{"stream_id", "string"},
	{"version", "long"},
	{"global_position", "long"},
	{"recorded_at", "long/timestamp-micros"},
	{"correlation_id", "null|string"},
	{"causation_id", "null|string"},
}

// describe writes a type the way envelopeFields does.
func describe(n *node) string {
	switch n.kind {
	case kindUnion:
		return describe(n.branches[0]) + "|" + describe(n.branches[1])
	case kindRecord:
		return n.name
	case kindArray:
		return "array<" + describe(n.items) + ">"
	}
	if n.logical != "" {
		return n.kind.String() + "/" + n.logical
	}
	return n.kind.String()
}

// checkEnvelope checks that a record starts with the envelope fields.
func checkEnvelope(n *node) error {
	if len(n.fields) < len(envelopeFields) {
		return fmt.Errorf("record %s: has %d fields, fewer than the %d envelope fields", n.name, len(n.fields), len(envelopeFields))
	}
	for i, want := range envelopeFields {
		f := n.fields[i]
		if f.name != want.name || describe(f.typ) != want.typ {
			return fmt.Errorf("record %s: field %d is %s (%s), want the envelope field %s (%s)",
				n.name, i+1, f.name, describe(f.typ), want.name, want.typ)
		}
	}
	return nil
}

// checkUpgrade checks that values written with old can be read as current: every field of
// current is either in old with the same type or has a default. Fields of old that current
// dropped are ignored when reading.
func checkUpgrade(old, current *node) error {
	for _, f := range current.fields {
		i, ok := old.index[f.name]
		switch {
		case ok && !sameType(old.fields[i].typ, f.typ):
			return fmt.Errorf("field %s changes type from %s to %s; add a new field instead", f.name, describe(old.fields[i].typ), describe(f.typ))
		case !ok && !f.hasDefault:
			return fmt.Errorf("field %s is new and has no default, so older events cannot be read as this version", f.name)
		}
	}
	return nil
}

// jsonKind names the JSON type of a value from parseJSON.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

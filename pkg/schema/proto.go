package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/annals-dev/annals/pkg/events"
)

// ErrNoProtobuf: the catalog was loaded without .proto files, so it cannot write or read
// Protocol Buffers values.
var ErrNoProtobuf = errors.New("the catalog has no Protocol Buffers schemas")

var protoFileName = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*)\.v([1-9][0-9]{0,5})\.proto$`)

// loadProtos compiles the .proto files at the root of fsys, one for each schema of c or
// none at all, checks each against the Avro schema of its type and version, and checks that
// the versions of each type evolve under Protocol Buffers' rules.
func (c *Catalog) loadProtos(fsys fs.FS) error {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return err
	}
	found := 0
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".proto" {
			continue
		}
		m := protoFileName.FindStringSubmatch(e.Name())
		if m == nil {
			return fmt.Errorf("file %s: want <Type>.v<N>.proto", e.Name())
		}
		n, _ := strconv.Atoi(m[2])
		t, ok := c.types[m[1]]
		if !ok || n > len(t.versions) {
			return fmt.Errorf("%s: there is no %s.v%d.avsc for it", e.Name(), m[1], n)
		}
		v := t.versions[n-1]
		if v.proto, err = compileProto(fsys, e.Name(), v); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
		found++
	}
	if found == 0 {
		return nil
	}
	for _, in := range c.infos {
		if v := c.types[in.Type].versions[in.Version-1]; v.proto == nil {
			return fmt.Errorf("%s.v%d.proto is missing: with Protocol Buffers schemas, every schema has one", in.Type, in.Version)
		}
	}
	for typ, t := range c.types {
		for i, older := range t.versions {
			for _, newer := range t.versions[i+1:] {
				if err := protoEvolves(older.proto, newer.proto, ""); err != nil {
					return fmt.Errorf("%w: %s.v%d.proto does not follow from v%d: %w", ErrIncompatible, typ, newer.version, older.version, err)
				}
			}
		}
	}
	c.protobuf = true
	return nil
}

// compileProto compiles one .proto file, which may import nothing, and returns its message
// for v after checking that it matches v's record.
func compileProto(fsys fs.FS, name string, v *version) (protoreflect.MessageDescriptor, error) {
	comp := protocompile.Compiler{
		Resolver: &protocompile.SourceResolver{Accessor: func(p string) (io.ReadCloser, error) { return fsys.Open(p) }},
		Reporter: reporter.NewReporter(nil, func(reporter.ErrorWithPos) {}),
	}
	files, err := comp.Compile(context.Background(), name)
	if err != nil {
		return nil, fmt.Errorf("protocompile: %w", err)
	}
	fd := files[0]
	if fd.Syntax() != protoreflect.Proto3 {
		return nil, fmt.Errorf("want syntax = \"proto3\", got %s", fd.Syntax())
	}
	if fd.Imports().Len() > 0 {
		return nil, fmt.Errorf("imports %s: a schema file imports nothing", fd.Imports().Get(0).Path())
	}
	ns := ""
	if i := strings.LastIndexByte(v.root.name, '.'); i >= 0 {
		ns = v.root.name[:i]
	}
	if string(fd.Package()) != ns {
		return nil, fmt.Errorf("package %q: want the Avro record's namespace %q", fd.Package(), ns)
	}
	if fd.Enums().Len() > 0 || fd.Extensions().Len() > 0 || fd.Services().Len() > 0 {
		return nil, errors.New("only messages: no enums, extensions or services")
	}
	md := fd.Messages().ByName(protoreflect.Name(v.typ))
	if md == nil {
		return nil, fmt.Errorf("no message %s", v.typ)
	}
	if err := matchProto(v.root, md, ""); err != nil {
		return nil, fmt.Errorf("message %s does not match %s.v%d.avsc: %w", v.typ, v.typ, v.version, err)
	}
	return md, nil
}

// matchProto checks that md is the message of the Avro record r: a field of the same name
// for each of r's fields and no other, each of the matching type: string for string (and
// uuid), int64 for long (and timestamp-micros, in microseconds since the Unix epoch), int32
// for int, bool for boolean, a message of the record's name for a record, repeated for an
// array, and optional (explicit presence) for a union with null. Maps, oneofs, enums, bytes,
// floats and other integer encodings are refused.
func matchProto(r *node, md protoreflect.MessageDescriptor, path string) error {
	if string(md.Name()) != unqualified(r.name) {
		return problem(path, "message %s for the record %s: want the record's name", md.Name(), r.name)
	}
	fields := md.Fields()
	if fields.Len() != len(r.fields) {
		names := make([]string, fields.Len())
		for i := range names {
			names[i] = string(fields.Get(i).Name())
		}
		return problem(path, "fields %v, want one for each of the record's %d fields", names, len(r.fields))
	}
	for _, f := range r.fields {
		fd := fields.ByName(protoreflect.Name(f.name))
		p := join(path, f.name)
		if fd == nil {
			return problem(p, "no such field in message %s", md.Name())
		}
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			return problem(p, "a field of oneof %s: oneofs are not supported", fd.ContainingOneof().Name())
		}
		t := f.typ
		optional := t.kind == kindUnion
		if optional {
			t = t.branches[t.value]
		}
		if t.kind == kindArray {
			if optional {
				return problem(p, "a union of null with an array has no Protocol Buffers form")
			}
			if !fd.IsList() {
				return problem(p, "want a repeated field for the array")
			}
			t = t.items
			if t.kind == kindUnion || t.kind == kindArray {
				return problem(p, "an array of %s has no Protocol Buffers form", t.kind)
			}
		} else {
			if fd.Cardinality() == protoreflect.Repeated {
				return problem(p, "repeated, but the record's field is a %s", t.kind)
			}
			if t.kind != kindRecord && fd.HasPresence() != optional { // a message always has presence
				if optional {
					return problem(p, "want optional for the union with null")
				}
				return problem(p, "optional, but the record's field is not a union with null")
			}
		}
		if err := matchKind(t, fd, p); err != nil {
			return err
		}
	}
	return nil
}

var protoKinds = map[kind]protoreflect.Kind{
	kindBoolean: protoreflect.BoolKind, kindInt: protoreflect.Int32Kind, kindLong: protoreflect.Int64Kind,
	kindString: protoreflect.StringKind, kindRecord: protoreflect.MessageKind,
}

func matchKind(t *node, fd protoreflect.FieldDescriptor, path string) error {
	want, ok := protoKinds[t.kind]
	if !ok {
		return problem(path, "a %s has no Protocol Buffers form", t.kind)
	}
	if fd.Kind() != want {
		return problem(path, "%s for the record's %s, want %s", fd.Kind(), describe(t), want)
	}
	if t.kind == kindRecord {
		return matchProto(t, fd.Message(), path)
	}
	return nil
}

// protoEvolves checks that newer, a later version of older's message, keeps Protocol
// Buffers' rules: a field number keeps its name, type, cardinality and presence; a field that
// is gone has its number and name reserved; a reserved number or name is never used again.
func protoEvolves(older, newer protoreflect.MessageDescriptor, path string) error {
	of, nf := older.Fields(), newer.Fields()
	for i := range of.Len() {
		o := of.Get(i)
		p := join(path, string(o.Name()))
		n := nf.ByNumber(o.Number())
		if n == nil {
			if !newer.ReservedRanges().Has(o.Number()) || !newer.ReservedNames().Has(o.Name()) {
				return problem(p, "field %d is gone without `reserved %d;` and `reserved \"%s\";`", o.Number(), o.Number(), o.Name())
			}
			continue
		}
		switch {
		case n.Name() != o.Name():
			return problem(p, "field %d is renamed %s: a field number keeps its name", o.Number(), n.Name())
		case n.Kind() != o.Kind():
			return problem(p, "field %d changes type from %s to %s", o.Number(), o.Kind(), n.Kind())
		case n.Cardinality() != o.Cardinality():
			return problem(p, "field %d changes from %s to %s", o.Number(), o.Cardinality(), n.Cardinality())
		case n.HasPresence() != o.HasPresence():
			return problem(p, "field %d changes whether it is optional", o.Number())
		case o.Kind() == protoreflect.MessageKind:
			if err := protoEvolves(o.Message(), n.Message(), p); err != nil {
				return err
			}
		}
	}
	for i := range nf.Len() {
		n := nf.Get(i)
		if older.ReservedRanges().Has(n.Number()) {
			return problem(join(path, string(n.Name())), "field number %d was reserved in the earlier version: a number is never reused", n.Number())
		}
		if older.ReservedNames().Has(n.Name()) {
			return problem(join(path, string(n.Name())), "name %s was reserved in the earlier version", n.Name())
		}
		if o := of.ByName(n.Name()); o != nil && o.Number() != n.Number() {
			return problem(join(path, string(n.Name())), "field %s moves from number %d to %d", n.Name(), o.Number(), n.Number())
		}
	}
	return nil
}

// EncodeProtobuf writes e as the Protocol Buffers message of its type's current version (the
// <Type>.v<N>.proto beside the .avsc), deterministically, and returns it with the fingerprint
// of the Avro schema of the same version, for the schema-fingerprint header: the headers are
// those of the other encodings, and the fingerprint names the type and version, so the
// .proto, the value was written with. The fields are those EncodeJSON writes: recorded_at in
// microseconds since the Unix epoch, an absent optional value not set. A catalog without
// .proto files returns ErrNoProtobuf.
func (c *Catalog) EncodeProtobuf(e events.Envelope) (value []byte, fingerprint uint64, err error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return c.encodeProtobuf(e, t.current())
}

func (c *Catalog) encodeProtobuf(e events.Envelope, v *version) ([]byte, uint64, error) {
	if v.proto == nil {
		return nil, 0, fmt.Errorf("encode: %w", ErrNoProtobuf)
	}
	native, err := v.native(e)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	if _, err := v.codec.BinaryFromNative(nil, native); err != nil {
		return nil, 0, fmt.Errorf("encode %s v%d: %w", v.typ, v.version, err)
	}
	m := dynamicpb.NewMessage(v.proto)
	if err := fillProto(m, v.root, native, ""); err != nil {
		return nil, 0, fmt.Errorf("encode: %w", fieldError(v, err))
	}
	value, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s v%d: %w", v.typ, v.version, err)
	}
	return value, v.fingerprint, nil
}

// fillProto sets the fields of m from rec, a record of r in goavro's native form.
func fillProto(m protoreflect.Message, r *node, native any, path string) error {
	rec, ok := native.(map[string]any)
	if !ok {
		return problem(path, "value %T does not fit the schema's record", native)
	}
	fields := m.Descriptor().Fields()
	for _, f := range r.fields {
		fd := fields.ByName(protoreflect.Name(f.name))
		p := join(path, f.name)
		x, t := rec[f.name], f.typ
		if t.kind == kindUnion {
			if x == nil {
				continue
			}
			u, ok := x.(map[string]any)
			if !ok || len(u) != 1 {
				return problem(p, "value %T does not fit the schema's union", x)
			}
			for _, b := range u {
				x = b
			}
			t = t.branches[t.value]
		}
		switch t.kind {
		case kindArray:
			a, ok := x.([]any)
			if !ok {
				return problem(p, "value %T does not fit the schema's array", x)
			}
			list := m.Mutable(fd).List()
			for i, item := range a {
				ip := p + "[" + strconv.Itoa(i) + "]"
				if t.items.kind == kindRecord {
					el := list.NewElement()
					if err := fillProto(el.Message(), t.items, item, ip); err != nil {
						return err
					}
					list.Append(el)
					continue
				}
				pv, err := protoScalar(t.items, item, ip)
				if err != nil {
					return err
				}
				list.Append(pv)
			}
		case kindRecord:
			if err := fillProto(m.Mutable(fd).Message(), t, x, p); err != nil {
				return err
			}
		default:
			pv, err := protoScalar(t, x, p)
			if err != nil {
				return err
			}
			m.Set(fd, pv)
		}
	}
	return nil
}

func protoScalar(t *node, x any, path string) (protoreflect.Value, error) {
	switch v := x.(type) {
	case bool:
		if t.kind == kindBoolean {
			return protoreflect.ValueOfBool(v), nil
		}
	case int32:
		if t.kind == kindInt {
			return protoreflect.ValueOfInt32(v), nil
		}
	case int64:
		if t.kind == kindLong {
			return protoreflect.ValueOfInt64(v), nil
		}
	case time.Time:
		if t.kind == kindLong && t.logical == "timestamp-micros" {
			return protoreflect.ValueOfInt64(v.UnixMicro()), nil
		}
	case string:
		if t.kind == kindString {
			return protoreflect.ValueOfString(v), nil
		}
	}
	return protoreflect.Value{}, problem(path, "value %T does not fit the schema's %s", x, t.kind)
}

// DecodeProtobuf reads a value EncodeProtobuf wrote with the version of the given
// fingerprint, with that version's message only, checks it against the Avro schema of the
// version as DecodeJSON does (a UUID that is not one, a timestamp outside the years 0000 to
// 9999) and returns it as Decode does: fields added since take their defaults. A value that
// is not that message, or holds fields the message does not have, is ErrMalformed.
func (c *Catalog) DecodeProtobuf(value []byte, fingerprint uint64) (Decoded, error) {
	v, ok := c.byFingerprint[fingerprint]
	if !ok {
		return Decoded{}, fmt.Errorf("decode: %w: %s", ErrUnknownFingerprint, FormatFingerprint(fingerprint))
	}
	if v.proto == nil {
		return Decoded{}, fmt.Errorf("decode: %w", ErrNoProtobuf)
	}
	doc, err := readProto(value, v.proto, v.root, true)
	if err == nil {
		var native any
		if native, err = fromJSON(v.root, doc, ""); err == nil {
			return c.decoded(v, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode: %w: %w", ErrMalformed, fieldError(v, err))
}

// DecodeProtobuf reads a value EncodeProtobuf wrote, as Catalog.DecodeProtobuf does. A value
// of a version the catalog lacks (a newer writer's) is read with the message of the
// catalog's current version of the type once the writer's Avro schema, fetched by the
// fingerprint, resolves to it: the versions' .proto files keep Protocol Buffers' rules, so
// fields the writer added are skipped and fields it dropped are unset.
func (r *Resolver) DecodeProtobuf(ctx context.Context, value []byte, fingerprint uint64) (Decoded, error) {
	if _, ok := r.cat.byFingerprint[fingerprint]; ok {
		return r.cat.DecodeProtobuf(value, fingerprint)
	}
	w, err := r.writer(ctx, fingerprint)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode: %w", err)
	}
	t, ok := r.cat.types[w.typ]
	if !ok || t.current().proto == nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w for the type", w.typ, w.version, ErrNoProtobuf)
	}
	cur := t.current()
	doc, err := readProto(value, cur.proto, cur.root, false)
	if err == nil {
		var native any
		if native, err = fromJSON(cur.root, doc, ""); err == nil {
			return r.cat.envelope(w.typ, w.version, w.fingerprint, cur.root, cur.version, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
}

// readProto parses value as md and returns it in the JSON form fromJSON takes, as a record
// of r (timestamps as time.Time). With strict, fields md does not have are an error.
func readProto(value []byte, md protoreflect.MessageDescriptor, r *node, strict bool) (any, error) {
	m := dynamicpb.NewMessage(md)
	if err := (proto.UnmarshalOptions{RecursionLimit: maxDepth}).Unmarshal(value, m); err != nil {
		return nil, fmt.Errorf("invalid Protocol Buffers value: %w", err)
	}
	return protoDoc(m, r, "", strict)
}

func protoDoc(m protoreflect.Message, r *node, path string, strict bool) (map[string]any, error) {
	if strict && len(m.GetUnknown()) > 0 {
		return nil, problem(path, "fields that message %s does not have", m.Descriptor().Name())
	}
	fields := m.Descriptor().Fields()
	doc := make(map[string]any, len(r.fields))
	for _, f := range r.fields {
		fd := fields.ByName(protoreflect.Name(f.name))
		p := join(path, f.name)
		t := f.typ
		if t.kind == kindUnion {
			if !m.Has(fd) {
				doc[f.name] = nil
				continue
			}
			t = t.branches[t.value]
		}
		switch t.kind {
		case kindArray:
			list := m.Get(fd).List()
			a := make([]any, list.Len())
			for i := range a {
				x, err := protoValue(list.Get(i), t.items, p+"["+strconv.Itoa(i)+"]", strict)
				if err != nil {
					return nil, err
				}
				a[i] = x
			}
			doc[f.name] = a
		case kindRecord:
			if !m.Has(fd) {
				continue // fromJSON: missing, or its default
			}
			fallthrough
		default:
			x, err := protoValue(m.Get(fd), t, p, strict)
			if err != nil {
				return nil, err
			}
			doc[f.name] = x
		}
	}
	return doc, nil
}

func protoValue(v protoreflect.Value, t *node, path string, strict bool) (any, error) {
	switch t.kind {
	case kindRecord:
		return protoDoc(v.Message(), t, path, strict)
	case kindLong:
		if t.logical == "timestamp-micros" {
			return time.UnixMicro(v.Int()).UTC(), nil
		}
		return v.Int(), nil
	case kindInt:
		return v.Int(), nil
	case kindBoolean:
		return v.Bool(), nil
	case kindString:
		return v.String(), nil
	}
	return nil, problem(path, "a %s has no Protocol Buffers form", t.kind)
}

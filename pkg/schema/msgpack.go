package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/annals-dev/annals/pkg/events"
)

// EncodeMsgpack writes e as a MessagePack map of the same record EncodeJSON writes, checked
// against the same schema, and returns it with that schema's fingerprint (for the
// schema-fingerprint header, as with JSON). The map holds the JSON object's fields in the
// schema's order under the same names, with the same values: event_id as a string,
// recorded_at as an RFC 3339 string in UTC to the microsecond, integers as MessagePack
// integers in their shortest form, nil for an absent optional value, records as maps and
// arrays as arrays. Nothing else (no binary, float, extension or timestamp type) appears.
func (c *Catalog) EncodeMsgpack(e events.Envelope) (value []byte, fingerprint uint64, err error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return c.encodeMsgpack(e, t.current())
}

func (c *Catalog) encodeMsgpack(e events.Envelope, v *version) ([]byte, uint64, error) {
	native, err := v.native(e)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	if _, err := v.codec.BinaryFromNative(nil, native); err != nil {
		return nil, 0, fmt.Errorf("encode %s v%d: %w", v.typ, v.version, err)
	}
	var buf bytes.Buffer
	buf.Grow(256)
	if err := writeMsgpack(msgpack.NewEncoder(&buf), v.root, native, ""); err != nil {
		return nil, 0, fmt.Errorf("encode: %w", fieldError(v, err))
	}
	return buf.Bytes(), v.fingerprint, nil
}

// DecodeMsgpack reads a value EncodeMsgpack wrote with the schema of the given fingerprint,
// checks it against that schema as DecodeJSON does and returns it as Decode does. The check is
// by type: a map whose fields or values do not fit the schema (an unknown or a repeated key,
// a float or a string where an integer belongs, a binary or an extension value anywhere) is
// ErrMalformed, as is anything after the map.
func (c *Catalog) DecodeMsgpack(value []byte, fingerprint uint64) (Decoded, error) {
	v, ok := c.byFingerprint[fingerprint]
	if !ok {
		return Decoded{}, fmt.Errorf("decode: %w: %s", ErrUnknownFingerprint, FormatFingerprint(fingerprint))
	}
	doc, err := parseMsgpack(value)
	if err == nil {
		var native any
		if native, err = fromJSON(v.root, doc, ""); err == nil {
			return c.decoded(v, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode: %w: %w", ErrMalformed, fieldError(v, err))
}

// DecodeMsgpack reads a value EncodeMsgpack wrote, as Catalog.DecodeMsgpack does, fetching
// the writer's schema when the catalog lacks it.
func (r *Resolver) DecodeMsgpack(ctx context.Context, value []byte, fingerprint uint64) (Decoded, error) {
	if _, ok := r.cat.byFingerprint[fingerprint]; ok {
		return r.cat.DecodeMsgpack(value, fingerprint)
	}
	w, err := r.writer(ctx, fingerprint)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode: %w", err)
	}
	doc, err := parseMsgpack(value)
	if err == nil {
		var native any
		if native, err = fromJSON(w.root, doc, ""); err == nil {
			return r.decoded(w, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", w.typ, w.version, ErrMalformed, err)
}

// writeMsgpack writes native, a value of n in goavro's native form, as toJSON writes JSON.
func writeMsgpack(enc *msgpack.Encoder, n *node, native any, path string) error {
	switch n.kind {
	case kindNull:
		if native == nil {
			return enc.EncodeNil()
		}
	case kindBoolean:
		if b, ok := native.(bool); ok {
			return enc.EncodeBool(b)
		}
	case kindInt:
		if i, ok := native.(int32); ok {
			return enc.EncodeInt(int64(i))
		}
	case kindLong:
		if n.logical == "timestamp-micros" {
			t, ok := native.(time.Time)
			if !ok {
				break
			}
			if t.Before(timestampMin) || t.After(timestampMax) {
				return problem(path, "timestamp %d µs is outside the years 0000 to 9999", t.UnixMicro())
			}
			return enc.EncodeString(t.UTC().Format(timestampLayout))
		}
		if i, ok := native.(int64); ok {
			return enc.EncodeInt(i)
		}
	case kindString:
		if s, ok := native.(string); ok {
			return enc.EncodeString(s)
		}
	case kindArray:
		a, ok := native.([]any)
		if !ok {
			break
		}
		if err := enc.EncodeArrayLen(len(a)); err != nil {
			return err
		}
		for i, item := range a {
			if err := writeMsgpack(enc, n.items, item, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		return nil
	case kindUnion:
		if native == nil {
			return enc.EncodeNil()
		}
		m, ok := native.(map[string]any)
		if !ok || len(m) != 1 {
			break
		}
		for _, v := range m {
			return writeMsgpack(enc, n.branches[n.value], v, path)
		}
	case kindRecord:
		m, ok := native.(map[string]any)
		if !ok {
			break
		}
		if err := enc.EncodeMapLen(len(n.fields)); err != nil {
			return err
		}
		for _, f := range n.fields {
			v, ok := m[f.name]
			if !ok {
				return problem(join(path, f.name), "missing")
			}
			if err := enc.EncodeString(f.name); err != nil {
				return err
			}
			if err := writeMsgpack(enc, f.typ, v, join(path, f.name)); err != nil {
				return err
			}
		}
		return nil
	}
	return problem(path, "value %T does not fit the schema's %s", native, n.kind)
}

// parseMsgpack reads one MessagePack value into the JSON form fromJSON takes: maps with
// string keys, arrays, strings, booleans, nil, and integers as int64 (or json.Number past
// the range of int64, which fromJSON then refuses as out of range). A float stays a float64,
// which fromJSON refuses wherever it is; binary and extension values, keys that are not
// strings, a key given twice, nesting deeper than maxDepth and data after the value are
// errors. Lengths are checked against the bytes left before anything is allocated for them.
func parseMsgpack(b []byte) (any, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	v, err := readMsgpack(dec, r, 0)
	if err != nil {
		return nil, err
	}
	if r.Len() > 0 {
		return nil, fmt.Errorf("invalid MessagePack: %d bytes after the value", r.Len())
	}
	return v, nil
}

func readMsgpack(dec *msgpack.Decoder, r *bytes.Reader, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("invalid MessagePack: nested deeper than %d", maxDepth)
	}
	c, err := dec.PeekCode()
	if err != nil {
		return nil, msgpackError(err)
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return nil, msgpackError(err)
		}
		if n < 0 || 2*n > r.Len() {
			return nil, fmt.Errorf("invalid MessagePack: a map of %d entries in %d bytes", n, r.Len())
		}
		m := make(map[string]any, n)
		for range n {
			kc, err := dec.PeekCode()
			if err != nil {
				return nil, msgpackError(err)
			}
			if !msgpcode.IsString(kc) {
				return nil, fmt.Errorf("invalid MessagePack: a map key of type %s, want a string", msgpackKind(kc))
			}
			k, err := dec.DecodeString()
			if err != nil {
				return nil, msgpackError(err)
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("invalid MessagePack: key %q appears twice", k)
			}
			if m[k], err = readMsgpack(dec, r, depth+1); err != nil {
				return nil, err
			}
		}
		return m, nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, msgpackError(err)
		}
		if n < 0 || n > r.Len() {
			return nil, fmt.Errorf("invalid MessagePack: an array of %d items in %d bytes", n, r.Len())
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readMsgpack(dec, r, depth+1); err != nil {
				return nil, err
			}
		}
		return a, nil
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		if err == nil && !utf8.ValidString(s) {
			err = errors.New("a string that is not UTF-8")
		}
		return s, msgpackError(err)
	case c == msgpcode.Nil:
		return nil, msgpackError(dec.DecodeNil())
	case c == msgpcode.True || c == msgpcode.False:
		b, err := dec.DecodeBool()
		return b, msgpackError(err)
	case msgpcode.IsFixedNum(c) || c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64 ||
		c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32:
		i, err := dec.DecodeInt64()
		return i, msgpackError(err)
	case c == msgpcode.Uint64:
		u, err := dec.DecodeUint64()
		if err != nil {
			return nil, msgpackError(err)
		}
		if u > math.MaxInt64 {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		return int64(u), nil
	case c == msgpcode.Float || c == msgpcode.Double:
		f, err := dec.DecodeFloat64()
		return f, msgpackError(err)
	}
	return nil, fmt.Errorf("invalid MessagePack: %s values are not part of the encoding", msgpackKind(c))
}

func msgpackError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("invalid MessagePack: %w", err)
}

func msgpackKind(c byte) string {
	switch {
	case msgpcode.IsBin(c):
		return "binary"
	case msgpcode.IsExt(c):
		return "extension"
	case msgpcode.IsString(c):
		return "string"
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return "map"
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return "array"
	case c == msgpcode.Float || c == msgpcode.Double:
		return "float"
	}
	return fmt.Sprintf("code 0x%02x", c)
}

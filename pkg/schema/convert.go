package schema

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The converters below walk a schema's nodes over a value in one of three forms:
//
//   - JSON, as parseJSON returns it: map[string]any, []any, json.Number, string, bool, nil.
//     Go values stand in where the envelope supplies a field: int64, time.Time.
//   - goavro's native form: map[string]any for records, []any for arrays, nil or
//     map[string]any{branch: value} for unions, int32, int64, string, bool, and time.Time for
//     timestamp-micros.
//   - Avro binary, which scan checks before goavro decodes it.

// maxDepth bounds the nesting of JSON documents.
const maxDepth = 64

// parseData parses an event's data: one JSON value, numbers kept exact (json.Number), no
// trailing data. It is on the relay's hot path, so it uses encoding/json's decoder directly:
// a key given twice takes its last value, as it does for encoding/json (the writer's data
// comes from json.Marshal and never repeats a key).
func parseData(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: data after the value")
	}
	return v, nil
}

// parseJSON parses one JSON value, keeping numbers exact (json.Number) and refusing duplicate
// object keys and trailing data.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("invalid JSON: nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		m := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			k := kt.(string) // the decoder only yields strings as keys
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("invalid JSON: key %q appears twice", k)
			}
			if m[k], err = parseValue(dec, depth+1); err != nil {
				return nil, err
			}
		}
		_, err = dec.Token()
		return m, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := parseValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err = dec.Token()
		return a, err
	}
	return nil, fmt.Errorf("invalid JSON: unexpected %v", d)
}

// pathError is a problem with the value at path ("" for the whole value).
type pathError struct {
	path string
	msg  string
}

func (e *pathError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func problem(path, format string, args ...any) error {
	return &pathError{path: path, msg: fmt.Sprintf(format, args...)}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// timestampMin and timestampMax bound timestamps to what RFC 3339 can write (years 0000 to
// 9999).
var (
	timestampMin = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	timestampMax = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
)

// timestampLayout writes timestamps in UTC, to the microsecond, without trailing zeros.
const timestampLayout = "2006-01-02T15:04:05.999999Z07:00"

// fromJSON converts v to the native form of n, checking it against n on the way.
func fromJSON(n *node, v any, path string) (any, error) {
	switch n.kind {
	case kindNull:
		if v != nil {
			return nil, problem(path, "want null, got %s", jsonKind(v))
		}
		return nil, nil
	case kindBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, problem(path, "want a boolean, got %s", jsonKind(v))
		}
		return b, nil
	case kindInt:
		i, err := integer(v, path, math.MinInt32, math.MaxInt32, "int")
		return int32(i), err
	case kindLong:
		if n.logical == "timestamp-micros" {
			return timestamp(v, path)
		}
		return integer(v, path, math.MinInt64, math.MaxInt64, "long")
	case kindString:
		s, ok := v.(string)
		if !ok {
			return nil, problem(path, "want a string, got %s", jsonKind(v))
		}
		if n.logical == "uuid" {
			u, err := uuid.Parse(s)
			if err != nil || len(s) != 36 {
				return nil, problem(path, "%q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
			}
			return u.String(), nil
		}
		return s, nil
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, problem(path, "want an array, got %s", jsonKind(v))
		}
		out := make([]any, len(a))
		for i, item := range a {
			var err error
			if out[i], err = fromJSON(n.items, item, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return nil, err
			}
		}
		return out, nil
	case kindUnion:
		if v == nil {
			return nil, nil
		}
		x, err := fromJSON(n.branches[n.value], v, path)
		if err != nil {
			return nil, err
		}
		return map[string]any{n.key: x}, nil
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, problem(path, "want an object, got %s", jsonKind(v))
		}
		if unknown := unknownKeys(n, m); len(unknown) > 0 {
			return nil, problem(join(path, unknown[0]), "unknown field: %s has no such field", n.name)
		}
		out := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			fv, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, problem(join(path, f.name), "missing, and the schema gives no default")
				}
				out[f.name] = f.def
				continue
			}
			var err error
			if out[f.name], err = fromJSON(f.typ, fv, join(path, f.name)); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, problem(path, "unsupported type %s", n.kind)
}

// unknownKeys returns the keys of m that are not fields of n, sorted.
func unknownKeys(n *node, m map[string]any) []string {
	var out []string
	for k := range m {
		if _, ok := n.index[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// integer reads an integer in [lo, hi] from a JSON number (or an int64 the envelope gives).
// A number with a fraction or an exponent counts if its value is a whole number.
func integer(v any, path string, lo, hi int64, typ string) (int64, error) {
	switch x := v.(type) {
	case int64:
		if x < lo || x > hi {
			return 0, problem(path, "%d is out of range for %s", x, typ)
		}
		return x, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if i < lo || i > hi {
				return 0, problem(path, "%s is out of range for %s", x, typ)
			}
			return i, nil
		}
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return 0, problem(path, "%s is not a number", x)
		}
		if !r.IsInt() {
			return 0, problem(path, "%s is not an integer", x)
		}
		if n := r.Num(); !n.IsInt64() || n.Int64() < lo || n.Int64() > hi {
			return 0, problem(path, "%s is out of range for %s", x, typ)
		}
		return r.Num().Int64(), nil
	}
	return 0, problem(path, "want an integer, got %s", jsonKind(v))
}

// timestamp reads an RFC 3339 time (or a time.Time the envelope gives), kept to the
// microsecond.
func timestamp(v any, path string) (time.Time, error) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return time.Time{}, problem(path, "%q is not an RFC 3339 time", x)
		}
	default:
		return time.Time{}, problem(path, "want an RFC 3339 time, got %s", jsonKind(v))
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Before(timestampMin) || t.After(timestampMax) {
		return time.Time{}, problem(path, "%s is outside the years 0000 to 9999", t.Format(time.RFC3339))
	}
	return t, nil
}

// toJSON appends the JSON of native, a value of n in goavro's native form. Unions are written
// as null or their value, timestamps as RFC 3339 in UTC.
func toJSON(buf []byte, n *node, native any, path string) ([]byte, error) {
	switch n.kind {
	case kindNull:
		if native != nil {
			break
		}
		return append(buf, "null"...), nil
	case kindBoolean:
		b, ok := native.(bool)
		if !ok {
			break
		}
		return strconv.AppendBool(buf, b), nil
	case kindInt:
		i, ok := native.(int32)
		if !ok {
			break
		}
		return strconv.AppendInt(buf, int64(i), 10), nil
	case kindLong:
		if n.logical == "timestamp-micros" {
			t, ok := native.(time.Time)
			if !ok {
				break
			}
			if t.Before(timestampMin) || t.After(timestampMax) {
				return nil, problem(path, "timestamp %d µs is outside the years 0000 to 9999", t.UnixMicro())
			}
			return appendString(buf, t.UTC().Format(timestampLayout)), nil
		}
		i, ok := native.(int64)
		if !ok {
			break
		}
		return strconv.AppendInt(buf, i, 10), nil
	case kindString:
		s, ok := native.(string)
		if !ok {
			break
		}
		if n.logical == "uuid" {
			if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
				return nil, problem(path, "%q is not a UUID", s)
			}
		}
		return appendString(buf, s), nil
	case kindArray:
		a, ok := native.([]any)
		if !ok {
			break
		}
		buf = append(buf, '[')
		for i, item := range a {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = toJSON(buf, n.items, item, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case kindUnion:
		if native == nil {
			return append(buf, "null"...), nil
		}
		m, ok := native.(map[string]any)
		if !ok || len(m) != 1 {
			break
		}
		for _, v := range m {
			return toJSON(buf, n.branches[n.value], v, path)
		}
	case kindRecord:
		m, ok := native.(map[string]any)
		if !ok {
			break
		}
		return appendFields(buf, n.fields, m, path)
	}
	return nil, problem(path, "value %T does not fit the schema's %s", native, n.kind)
}

// appendFields appends a JSON object of the given fields of a record in native form.
func appendFields(buf []byte, fields []*field, m map[string]any, path string) ([]byte, error) {
	buf = append(buf, '{')
	for i, f := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, f.name)
		buf = append(buf, ':')
		v, ok := m[f.name]
		if !ok {
			return nil, problem(join(path, f.name), "missing")
		}
		var err error
		if buf, err = toJSON(buf, f.typ, v, join(path, f.name)); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// appendString appends s as a JSON string, without escaping <, > and &.
func appendString(buf []byte, s string) []byte {
	plain := true // printable ASCII without a quote or a backslash: written as it is
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// scan checks that b starts with a well-formed Avro binary value of n and returns the rest.
// goavro sizes an array's first block by the count the data claims (up to 2^31-1 items), so
// the bytes are checked first: every count must fit in the bytes that remain, every string
// must be UTF-8 and every union index must exist.
func scan(n *node, b []byte, path string) ([]byte, error) {
	switch n.kind {
	case kindNull:
		return b, nil
	case kindBoolean:
		if len(b) < 1 {
			return nil, problem(path, "truncated")
		}
		if b[0] > 1 {
			return nil, problem(path, "boolean byte %#x is neither 0 nor 1", b[0])
		}
		return b[1:], nil
	case kindInt:
		i, rest, err := varint(b, path)
		if err != nil {
			return nil, err
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			return nil, problem(path, "%d is out of range for int", i)
		}
		return rest, nil
	case kindLong:
		_, rest, err := varint(b, path)
		return rest, err
	case kindString:
		size, rest, err := varint(b, path)
		if err != nil {
			return nil, err
		}
		if size < 0 || size > int64(len(rest)) {
			return nil, problem(path, "string of %d bytes, but %d remain", size, len(rest))
		}
		if !utf8.Valid(rest[:size]) {
			return nil, problem(path, "string is not valid UTF-8")
		}
		return rest[size:], nil
	case kindArray:
		for i := 0; ; {
			count, rest, err := varint(b, path)
			if err != nil {
				return nil, err
			}
			b = rest
			if count == 0 {
				return b, nil
			}
			if count < 0 {
				if count == math.MinInt64 {
					return nil, problem(path, "invalid block count")
				}
				count = -count
				size, rest, err := varint(b, path)
				if err != nil {
					return nil, err
				}
				if size < 0 || size > int64(len(rest)) {
					return nil, problem(path, "block of %d bytes, but %d remain", size, len(rest))
				}
				b = rest
			}
			if count > int64(len(b)) {
				return nil, problem(path, "block of %d items, but only %d bytes remain", count, len(b))
			}
			for range count {
				if b, err = scan(n.items, b, path+"["+strconv.Itoa(i)+"]"); err != nil {
					return nil, err
				}
				i++
			}
		}
	case kindUnion:
		i, rest, err := varint(b, path)
		if err != nil {
			return nil, err
		}
		if i != 0 && i != 1 {
			return nil, problem(path, "union branch %d does not exist", i)
		}
		return scan(n.branches[i], rest, path)
	case kindRecord:
		for _, f := range n.fields {
			var err error
			if b, err = scan(f.typ, b, join(path, f.name)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, problem(path, "unsupported type %s", n.kind)
}

// varint reads a zig-zag encoded variable-length long, as Avro and encoding/binary both write
// it.
func varint(b []byte, path string) (int64, []byte, error) {
	i, n := binary.Varint(b)
	switch {
	case n == 0:
		return 0, nil, problem(path, "truncated")
	case n < 0:
		return 0, nil, problem(path, "variable-length integer overflows 64 bits")
	}
	return i, b[n:], nil
}

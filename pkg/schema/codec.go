package schema

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// The single-object header: the magic C3 01, then the fingerprint.
const (
	magic0, magic1 = 0xC3, 0x01
	headerLen      = 10
)

// Encode writes e as its type's current schema in the Avro single-object encoding and returns
// the value with the schema's fingerprint. The envelope fields come from e (an empty
// correlation or causation id is null; recorded_at is kept to the microsecond); the data
// fields from e.Data, a JSON object (empty Data counts as {}). A data field the JSON leaves
// out takes the schema's default. A missing field without default, a value of the wrong JSON
// type, a number that is not an integer or does not fit a long, or a field the schema does not
// know is a *FieldError; a type without schema is ErrUnknownType.
func (c *Catalog) Encode(e events.Envelope) (value []byte, fingerprint uint64, err error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return c.encode(e, t.current())
}

func (c *Catalog) encode(e events.Envelope, v *version) ([]byte, uint64, error) {
	native, err := v.native(e)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	// The header is written here rather than by goavro's SingleFromNative, which would use
	// goavro's own fingerprint (see loadFile).
	value := binary.LittleEndian.AppendUint64(append(make([]byte, 0, 256), magic0, magic1), v.fingerprint)
	value, err = v.codec.BinaryFromNative(value, native)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s v%d: %w", v.typ, v.version, err)
	}
	return value, v.fingerprint, nil
}

// EncodeJSON writes e as a plain JSON object of the same record Encode writes, checked against
// the same schema, and returns it with that schema's fingerprint, so that both encodings go out
// with the same headers. The object holds the envelope fields, then the data fields, in the
// schema's order: event_id as a string, recorded_at as RFC 3339 in UTC to the microsecond,
// null for an absent optional value.
func (c *Catalog) EncodeJSON(e events.Envelope) (value []byte, fingerprint uint64, err error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	v := t.current()
	native, err := v.native(e)
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	if _, err := v.codec.BinaryFromNative(nil, native); err != nil {
		return nil, 0, fmt.Errorf("encode %s v%d: %w", v.typ, v.version, err)
	}
	value, err = toJSON(make([]byte, 0, 256), v.root, native, "")
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", fieldError(v, err))
	}
	return value, v.fingerprint, nil
}

// native builds the record of e in goavro's native form.
func (v *version) native(e events.Envelope) (map[string]any, error) {
	data := map[string]any{}
	if len(e.Data) > 0 {
		d, err := parseData(e.Data)
		if err != nil {
			return nil, fieldError(v, err)
		}
		m, ok := d.(map[string]any)
		if !ok {
			return nil, &FieldError{Type: v.typ, Version: v.version, Problem: "data must be a JSON object, not " + jsonKind(d)}
		}
		data = m
	}
	for _, f := range envelopeFields {
		if _, ok := data[f.name]; ok {
			return nil, &FieldError{Type: v.typ, Version: v.version, Field: f.name,
				Problem: "an envelope field, which the event's envelope sets, not its data"}
		}
	}
	data["event_id"] = e.EventID.String()
	data["stream_id"] = e.StreamID
	data["version"] = e.Version
	data["global_position"] = e.GlobalPosition
	data["recorded_at"] = e.RecordedAt
	data["correlation_id"] = optional(e.CorrelationID)
	data["causation_id"] = optional(e.CausationID)
	native, err := fromJSON(v.root, data, "")
	if err != nil {
		return nil, fieldError(v, err)
	}
	return native.(map[string]any), nil
}

func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Decoded is an event read from a value.
type Decoded struct {
	// Envelope holds the event: its type, the envelope fields, Category (taken from
	// StreamID), and Data as a JSON object of the data fields in the shape of the type's
	// current schema, whose version SchemaVersion gives. Metadata is nil: values do not carry
	// it.
	Envelope events.Envelope
	// WriterVersion and Fingerprint identify the schema the value was written with.
	WriterVersion int
	Fingerprint   uint64
}

// Decode reads an Avro single-object encoded value. It finds the writer's schema by the
// fingerprint in the header and decodes the body with that schema only (an unknown
// fingerprint is ErrUnknownFingerprint, a value without the header ErrNotSingleObject, a body
// that does not match the schema, has bytes left over or a timestamp outside the years 0000 to
// 9999 ErrMalformed). It then reads the record as the type's current version: fields added
// since the writer's version take their defaults, fields dropped since are left out. In Data,
// a union is null or its value.
func (c *Catalog) Decode(value []byte) (Decoded, error) {
	fp, err := fingerprintOf(value)
	if err != nil {
		return Decoded{}, err
	}
	v, ok := c.byFingerprint[fp]
	if !ok {
		return Decoded{}, fmt.Errorf("decode: %w: %s", ErrUnknownFingerprint, FormatFingerprint(fp))
	}
	body := value[headerLen:]
	rest, err := scan(v.root, body, "")
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d bytes after the record", len(rest))
	}
	if err != nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", v.typ, v.version, ErrMalformed, err)
	}
	native, _, err := v.codec.NativeFromBinary(body)
	if err != nil {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", v.typ, v.version, ErrMalformed, err)
	}
	return c.decoded(v, native)
}

// DecodeJSON reads a value EncodeJSON wrote with the schema of the given fingerprint (sent
// along in the schema-fingerprint header), checks it against that schema and returns it as
// Decode does. Optional fields it leaves out take their defaults.
func (c *Catalog) DecodeJSON(value []byte, fingerprint uint64) (Decoded, error) {
	v, ok := c.byFingerprint[fingerprint]
	if !ok {
		return Decoded{}, fmt.Errorf("decode: %w: %s", ErrUnknownFingerprint, FormatFingerprint(fingerprint))
	}
	doc, err := parseJSON(value)
	if err == nil {
		var native any
		if native, err = fromJSON(v.root, doc, ""); err == nil {
			return c.decoded(v, native)
		}
	}
	return Decoded{}, fmt.Errorf("decode: %w: %w", ErrMalformed, fieldError(v, err))
}

// decoded reads the native record of v as the current version of its type.
func (c *Catalog) decoded(v *version, native any) (Decoded, error) {
	rec, ok := native.(map[string]any)
	if !ok {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: record decoded as %T", v.typ, v.version, ErrMalformed, native)
	}
	cur := c.types[v.typ].current()
	if cur != v {
		up := make(map[string]any, len(cur.root.fields))
		for _, f := range cur.root.fields {
			if x, ok := rec[f.name]; ok {
				up[f.name] = x
			} else {
				up[f.name] = f.def // checkUpgrade made sure there is one
			}
		}
		rec = up
	}
	return c.envelope(v.typ, v.version, v.fingerprint, cur.root, cur.version, rec)
}

// envelope makes the Decoded of rec, a record of type typ in the native form of reader,
// version readerVersion of the type, written with version writerVersion (fingerprint fp).
func (c *Catalog) envelope(typ string, writerVersion int, fp uint64, reader *node, readerVersion int, native any) (Decoded, error) {
	fail := func(err error) (Decoded, error) {
		return Decoded{}, fmt.Errorf("decode %s v%d: %w: %w", typ, writerVersion, ErrMalformed, err)
	}
	rec, ok := native.(map[string]any)
	if !ok {
		return fail(fmt.Errorf("record decoded as %T", native))
	}
	d := Decoded{WriterVersion: writerVersion, Fingerprint: fp}
	e := &d.Envelope
	e.Type, e.SchemaVersion = typ, readerVersion
	var err error
	if e.EventID, err = uuid.Parse(str(rec["event_id"])); err != nil {
		return fail(fmt.Errorf("event_id: %w", err))
	}
	e.StreamID = str(rec["stream_id"])
	e.Category = events.Category(e.StreamID)
	e.Version, _ = rec["version"].(int64)
	e.GlobalPosition, _ = rec["global_position"].(int64)
	e.RecordedAt, _ = rec["recorded_at"].(time.Time)
	if e.RecordedAt.Before(timestampMin) || e.RecordedAt.After(timestampMax) {
		return fail(fmt.Errorf("recorded_at: %d µs is outside the years 0000 to 9999", e.RecordedAt.UnixMicro()))
	}
	e.CorrelationID = unwrap(rec["correlation_id"])
	e.CausationID = unwrap(rec["causation_id"])
	data, err := appendFields(make([]byte, 0, 128), reader.fields[len(envelopeFields):], rec, "")
	if err != nil {
		return fail(err)
	}
	e.Data = json.RawMessage(data)
	return d, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// unwrap returns the string of a ["null", "string"] union in native form; "" for null.
func unwrap(v any) string {
	m, _ := v.(map[string]any)
	return str(m["string"])
}

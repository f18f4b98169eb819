package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Envelope is one recorded event with everything the store knows about it.
type Envelope struct {
	EventID        uuid.UUID         `json:"event_id"`
	StreamID       string            `json:"stream_id"`
	Category       string            `json:"category"`
	Version        int64             `json:"version"`         // 0-based, contiguous within the stream
	GlobalPosition int64             `json:"global_position"` // unique, increasing across the store
	Type           string            `json:"type"`
	SchemaVersion  int               `json:"schema_version"`
	Data           json.RawMessage   `json:"data"`
	Metadata       map[string]string `json:"metadata"`
	CorrelationID  string            `json:"correlation_id,omitempty"`
	CausationID    string            `json:"causation_id,omitempty"`
	RecordedAt     time.Time         `json:"recorded_at"` // UTC
}

// Event is an event to append: what happened, not yet where or when.
type Event struct {
	// ID is the event's id; a UUIDv7 is generated when it is zero.
	ID            uuid.UUID
	Type          string
	SchemaVersion int // 1 when zero
	Data          json.RawMessage
	Metadata      map[string]string
}

// NewEvent marshals data into an Event of the given type: compact JSON, as json.Marshal
// writes it but for text, which is kept as it is rather than HTML-escaped (json.Marshal turns
// each <, > and & into six bytes, so that text full of markup took up to six times its size).
func NewEvent(eventType string, data any) (Event, error) {
	b, err := marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("event %s: %w", eventType, err)
	}
	return Event{Type: eventType, Data: b}, nil
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// AppendOptions carry what every event of one append shares.
type AppendOptions struct {
	CorrelationID string
	CausationID   string
	// Metadata is added to the metadata of every event a Repository saves (an event's own
	// keys win): who caused the events, for example. Stores themselves do not read it.
	Metadata map[string]string
	// Idempotency, when set, is recorded with the append, atomically, by a store that keeps
	// idempotency keys (IdempotencyStore); the append fails with ErrIdempotencyKeyTaken when
	// the key was recorded before, and with ErrIdempotencyUnsupported on a store that keeps
	// none.
	Idempotency *IdempotencyKey
}

// AppendResult says where an append landed.
type AppendResult struct {
	StreamID string `json:"stream_id"`
	// FirstVersion and LastVersion are the versions of the first and last appended event;
	// LastVersion is the stream's version after the append.
	FirstVersion int64 `json:"first_version"`
	LastVersion  int64 `json:"version"`
	// FirstPosition and LastPosition are the global positions of those events.
	FirstPosition int64       `json:"first_position"`
	LastPosition  int64       `json:"position"`
	EventIDs      []uuid.UUID `json:"event_ids"`
	RecordedAt    time.Time   `json:"recorded_at"`
}

// StreamID joins a category and an id: "user-<uuid>".
func StreamID(category, id string) string { return category + "-" + id }

// Category is the part of a stream id before the first '-'.
func Category(streamID string) string {
	c, _, _ := strings.Cut(streamID, "-")
	return c
}

// ValidateStreamID checks that a stream id has the form <category>-<id>, with a category of
// lower-case letters and digits and an id of printable characters.
func ValidateStreamID(streamID string) error {
	c, id, ok := strings.Cut(streamID, "-")
	if !ok || c == "" || id == "" || len(streamID) > 200 {
		return fmt.Errorf("%w: stream id %q is not <category>-<id>", ErrInvalid, streamID)
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("%w: stream category %q: only a-z, 0-9 and _", ErrInvalid, c)
		}
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: stream id %q has a space or control character", ErrInvalid, streamID)
		}
	}
	return nil
}

// ExpectedVersion is what an append expects of the stream: any state, no stream yet, some
// stream, or exactly a given version (the version of its last event).
type ExpectedVersion struct {
	kind    expectKind
	version int64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Any appends whatever the stream's state.
func Any() ExpectedVersion { return ExpectedVersion{kind: expectAny} }

// NoStream appends only if the stream does not exist yet.
func NoStream() ExpectedVersion { return ExpectedVersion{kind: expectNoStream} }

// StreamExists appends only if the stream has at least one event.
func StreamExists() ExpectedVersion { return ExpectedVersion{kind: expectStreamExists} }

// Exact appends only if the stream's last event has version v. Exact(-1) is NoStream.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		return NoStream()
	}
	return ExpectedVersion{kind: expectExact, version: v}
}

// IsAny, IsNoStream and IsStreamExists tell the mode; Version tells an exact expectation.
func (e ExpectedVersion) IsAny() bool          { return e.kind == expectAny }
func (e ExpectedVersion) IsNoStream() bool     { return e.kind == expectNoStream }
func (e ExpectedVersion) IsStreamExists() bool { return e.kind == expectStreamExists }

// Version returns the expected version and true for Exact, else 0 and false.
func (e ExpectedVersion) Version() (int64, bool) { return e.version, e.kind == expectExact }

// Allows reports whether a stream at version actual (-1: no stream) satisfies e.
func (e ExpectedVersion) Allows(actual int64) bool {
	switch e.kind {
	case expectNoStream:
		return actual < 0
	case expectStreamExists:
		return actual >= 0
	case expectExact:
		return actual == e.version
	}
	return true
}

func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectNoStream:
		return "no_stream"
	case expectStreamExists:
		return "stream_exists"
	case expectExact:
		return strconv.FormatInt(e.version, 10)
	}
	return "any"
}

// MarshalJSON writes the mode as in String: a number for an exact version, else a word.
func (e ExpectedVersion) MarshalJSON() ([]byte, error) {
	if v, ok := e.Version(); ok {
		return []byte(strconv.FormatInt(v, 10)), nil
	}
	return json.Marshal(e.String())
}

// ParseExpectedVersion reads the forms String writes.
func ParseExpectedVersion(s string) (ExpectedVersion, error) {
	switch s {
	case "any":
		return Any(), nil
	case "no_stream":
		return NoStream(), nil
	case "stream_exists":
		return StreamExists(), nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < -1 {
		return ExpectedVersion{}, fmt.Errorf("%w: expected version %q: want any, no_stream, stream_exists or a version >= -1", ErrInvalid, s)
	}
	return Exact(v), nil
}

// Errors of the store. Classify with errors.Is and errors.As.
var (
	// ErrNotFound: the stream (or aggregate) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request itself is malformed (a bad stream id, an empty event type, ...).
	ErrInvalid = errors.New("invalid")
	// ErrStreamFull: the append would take the stream past its maximum number of events.
	ErrStreamFull = errors.New("stream is full")
	// ErrTooLarge: an event is larger than the store takes.
	ErrTooLarge = errors.New("too large")
)

// VersionConflictError: the stream is not at the expected version.
type VersionConflictError struct {
	StreamID string
	Expected ExpectedVersion
	// Actual is the stream's version when the append was refused; -1 when it does not exist.
	Actual int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("version conflict on %s: expected %s, actual %d", e.StreamID, e.Expected, e.Actual)
}

// StreamFullError: the stream would exceed its maximum number of events.
type StreamFullError struct {
	StreamID  string
	Version   int64 // the stream's version
	Appending int
	Max       int
}

func (e *StreamFullError) Error() string {
	return fmt.Sprintf("stream %s has %d events; appending %d would exceed the maximum of %d (MAX_EVENTS_PER_AGGREGATE)",
		e.StreamID, e.Version+1, e.Appending, e.Max)
}

// Is makes errors.Is(err, ErrStreamFull) hold.
func (e *StreamFullError) Is(target error) bool { return target == ErrStreamFull }

// Size is what an event counts against a store's limit on the size of events
// (MAX_EVENT_BYTES): the bytes of its data and of its metadata's keys and values.
func (e Event) Size() int {
	n := len(e.Data)
	for k, v := range e.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// TooLargeError: an event of an append is larger than the store takes. It is ErrTooLarge, and
// ErrInvalid too: a refused append changes nothing, and the same event is refused again.
type TooLargeError struct {
	StreamID string
	Index    int // the event's place in the append, from 0
	Type     string
	Size     int // the event's Size
	Max      int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("event %d (%s) of %s has %d bytes of data and metadata, over the limit of %d (MAX_EVENT_BYTES)",
		e.Index, e.Type, e.StreamID, e.Size, e.Max)
}

// Is makes errors.Is(err, ErrTooLarge) and errors.Is(err, ErrInvalid) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge || target == ErrInvalid }

package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Hash is a SHA-256 digest of the chain. It marshals as 64 lower-case hex digits.
type Hash [sha256.Size]byte

// Genesis is the previous hash of the first entry: 32 zero bytes.
var Genesis Hash

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("hash: %d hex digits, want %d", len(b), 2*len(h))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Entry is one entry of the audit log: who caused an event (correlation and causation ids,
// metadata), what it was (type, stream, version, position, schema version, data, id), when
// (recorded by the writer, audited by the auditor) and where the auditor read it (topic,
// partition, offset), with its place in the chain.
type Entry struct {
	Seq int64 `json:"seq"`

	EventID        uuid.UUID       `json:"event_id"`
	Type           string          `json:"type"`
	StreamID       string          `json:"stream_id"`
	StreamVersion  int64           `json:"stream_version"`
	GlobalPosition int64           `json:"global_position"`
	SchemaVersion  int64           `json:"schema_version"`
	Data           json.RawMessage `json:"data"`

	Metadata      map[string]string `json:"metadata"`
	CorrelationID string            `json:"correlation_id"`
	CausationID   string            `json:"causation_id"`

	RecordedAt time.Time `json:"recorded_at"`
	AuditedAt  time.Time `json:"audited_at"`

	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`

	PrevHash Hash `json:"prev_hash"`
	Hash     Hash `json:"hash"`
}

// EncodingVersion is the first field of every entry's canonical encoding. A future encoding
// gets a new one; entries keep the encoding they were hashed with.
const EncodingVersion = "annals-audit-v1"

// Canonical appends the canonical encoding of e to b and returns it. The encoding is the
// concatenation of these fields, in this order:
//
//	 1  the string EncodingVersion ("annals-audit-v1")
//	 2  Seq             int
//	 3  PrevHash        bytes (32)
//	 4  EventID         bytes (the UUID's 16 bytes)
//	 5  Type            string
//	 6  StreamID        string
//	 7  StreamVersion   int
//	 8  GlobalPosition  int
//	 9  SchemaVersion   int
//	10  Data            bytes (the JSON text exactly as stored)
//	11  Metadata        bytes: a 4-byte big-endian count of pairs, then for each key in
//	                    ascending byte order the string key and the string value
//	12  CorrelationID   string
//	13  CausationID     string
//	14  RecordedAt      int (microseconds since 1970-01-01T00:00:00Z)
//	15  AuditedAt       int (microseconds since 1970-01-01T00:00:00Z)
//	16  Topic           string
//	17  Partition       int
//	18  Offset          int
//
// where bytes and string (UTF-8) are a 4-byte big-endian length followed by that many
// bytes, and int is a 4-byte big-endian 8 followed by the value as an 8-byte big-endian two's
// complement integer. Every field is length-prefixed, so no two different entries encode
// alike. Hash is not part of the encoding: it is SHA-256 of it.
func (e *Entry) Canonical(b []byte) []byte {
	b = appendString(b, EncodingVersion)
	b = appendInt(b, e.Seq)
	b = appendBytes(b, e.PrevHash[:])
	b = appendBytes(b, e.EventID[:])
	b = appendString(b, e.Type)
	b = appendString(b, e.StreamID)
	b = appendInt(b, e.StreamVersion)
	b = appendInt(b, e.GlobalPosition)
	b = appendInt(b, e.SchemaVersion)
	b = appendBytes(b, e.Data)
	b = appendMetadata(b, e.Metadata)
	b = appendString(b, e.CorrelationID)
	b = appendString(b, e.CausationID)
	b = appendInt(b, e.RecordedAt.UnixMicro())
	b = appendInt(b, e.AuditedAt.UnixMicro())
	b = appendString(b, e.Topic)
	b = appendInt(b, int64(e.Partition))
	b = appendInt(b, e.Offset)
	return b
}

// ComputeHash returns SHA-256 of the entry's canonical encoding: what Hash must be.
func (e *Entry) ComputeHash() Hash {
	return sha256.Sum256(e.Canonical(make([]byte, 0, 512+len(e.Data))))
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendMetadata(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go compares strings bytewise
	size := 4
	for _, k := range keys {
		size += 8 + len(k) + len(m[k])
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

package events

import (
	"context"
	"encoding/json"
	"time"
)

// Appender appends events to a stream under an expected version, atomically: all of them or
// none.
type Appender interface {
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events []Event, opts AppendOptions) (AppendResult, error)
}

// StreamReader reads one stream forward.
type StreamReader interface {
	// ReadStream returns up to limit events of the stream with from <= version <= to (to < 0:
	// to the end), in version order. A stream that does not exist reads as empty.
	ReadStream(ctx context.Context, streamID string, from, to int64, limit int) ([]Envelope, error)
}

// AllQuery pages through every stream by global position.
type AllQuery struct {
	After int64 // return events with a global position above this
	Limit int
	Since time.Time // zero: no lower bound on recorded_at
	Until time.Time // zero: no upper bound (exclusive)
	Types []string  // empty: every type
}

// AllReader reads the all-stream: every stream's events in global-position order.
//
// Its reads are commit-safe. Positions are handed out as events are appended, and an append
// that took a lower position may commit after one that took a higher: so ReadAll returns no
// event above the head, a position at or below which every append has committed or rolled
// back. A reader that pages forward, each page after the last position of the one before,
// therefore never skips an event: whatever commits later has a position above every position
// it has read. An open transaction that appended holds the all-stream back from its position
// on until it ends; reads of one stream (StreamReader) are not held.
type AllReader interface {
	// ReadAll returns up to q.Limit events with a global position above q.After and at or
	// below the head, in position order, filtered as q says.
	ReadAll(ctx context.Context, q AllQuery) ([]Envelope, error)
	// Head returns the position the all-stream is complete up to: every append that took a
	// position at or below it has committed or rolled back. It is 0 before the first append
	// and, while no append is under way, at least the last position committed. While appends
	// are under way it may lag behind the events that ReadAll would return.
	Head(ctx context.Context) (int64, error)
}

// StreamInfo is a stream's metadata.
type StreamInfo struct {
	StreamID   string    `json:"stream_id"`
	Category   string    `json:"category"`
	Version    int64     `json:"version"`
	EventCount int64     `json:"event_count"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Stats summarise the store.
type Stats struct {
	TotalEvents  int64            `json:"total_events"`
	TotalStreams int64            `json:"total_streams"`
	EventsByType map[string]int64 `json:"events_by_type"`
	RecentEvents []Envelope       `json:"recent_events"`
}

// Reader answers the store's queries.
type Reader interface {
	StreamReader
	AllReader
	// StreamInfo returns ErrNotFound for a stream without events.
	StreamInfo(ctx context.Context, streamID string) (StreamInfo, error)
	Stats(ctx context.Context, recent int) (Stats, error)
	// VersionAt is the version of the stream's last event recorded at or before t; -1 if none.
	VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error)
}

// Snapshot is an aggregate's state at a version, in the layout of its state-schema version.
type Snapshot struct {
	StreamID           string
	Version            int64
	StateSchemaVersion int
	State              json.RawMessage
	CreatedAt          time.Time
}

// SnapshotStore keeps snapshots.
type SnapshotStore interface {
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LatestSnapshot returns the newest snapshot of the stream with the given state-schema
	// version and a version <= maxVersion; false when there is none.
	LatestSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64) (Snapshot, bool, error)
}

// SnapshotStreamReader is a store that reads a stream's latest snapshot together with the
// events after it, in one round trip rather than two. It is optional: Repository loads
// through it when its store has it, and through LatestSnapshot and ReadStream otherwise.
type SnapshotStreamReader interface {
	// ReadFromSnapshot returns what LatestSnapshot returns for the stream, the state-schema
	// version and maxVersion, and what ReadStream returns for the page of up to limit events
	// after that snapshot's version (from version 0 when there is none) and at or below
	// maxVersion, read at the same moment.
	ReadFromSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64, limit int) (Snapshot, bool, []Envelope, error)
}

// Store is a whole event store.
type Store interface {
	Appender
	Reader
	SnapshotStore
}

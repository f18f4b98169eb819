package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// AppendLimits are a store's bounds on one append: the most events it may hold
// (MaxEventsPerStream, which no append may exceed on its own) and the largest event (Size);
// 0 means no bound.
type AppendLimits struct {
	MaxEventsPerStream int
	MaxEventBytes      int
}

// CheckAppend checks an append's input before a store writes anything, the same way for every
// store: a valid stream id, at least one event and no more than a stream may hold, ids of
// correlation and causation and event types as UTF-8 text without NUL (what PostgreSQL can
// hold, so that every store takes the same appends), each type 1 to 200 bytes, each event
// within MaxEventBytes, data that is valid JSON in UTF-8, and no event id given twice. It
// returns ErrInvalid, a *StreamFullError or a *TooLargeError.
func CheckAppend(streamID string, evs []Event, opts AppendOptions, limits AppendLimits) error {
	if err := ValidateStreamID(streamID); err != nil {
		return err
	}
	if !text(streamID) {
		return fmt.Errorf("%w: append %s: stream id is not valid UTF-8", ErrInvalid, streamID)
	}
	if len(evs) == 0 {
		return fmt.Errorf("%w: append to %s: no events", ErrInvalid, streamID)
	}
	if limit := limits.MaxEventsPerStream; limit > 0 && len(evs) > limit {
		return &StreamFullError{StreamID: streamID, Version: -1, Appending: len(evs), Max: limit}
	}
	if !text(opts.CorrelationID) || !text(opts.CausationID) {
		return fmt.Errorf("%w: append %s: correlation and causation ids must be UTF-8 without NUL", ErrInvalid, streamID)
	}
	seen := make(map[uuid.UUID]bool, len(evs))
	for i, e := range evs {
		if e.Type == "" || len(e.Type) > 200 {
			return fmt.Errorf("%w: event %d of %s: type must be 1 to 200 characters", ErrInvalid, i, streamID)
		}
		if !text(e.Type) {
			return fmt.Errorf("%w: event %d of %s: type must be UTF-8 without NUL", ErrInvalid, i, streamID)
		}
		if limit := limits.MaxEventBytes; limit > 0 && e.Size() > limit {
			return &TooLargeError{StreamID: streamID, Index: i, Type: e.Type, Size: e.Size(), Max: limit}
		}
		if !json.Valid(e.Data) || !utf8.Valid(e.Data) {
			return fmt.Errorf("%w: event %d (%s) of %s: data is not valid JSON", ErrInvalid, i, e.Type, streamID)
		}
		if e.ID != uuid.Nil {
			if seen[e.ID] {
				return fmt.Errorf("%w: append %s: event id %s is repeated", ErrInvalid, streamID, e.ID)
			}
			seen[e.ID] = true
		}
	}
	return nil
}

// text reports whether s is UTF-8 without NUL.
func text(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// Recorded returns what a store records of e besides its type and data: its id (a new UUIDv7
// when e has none) and its metadata as a JSON object ("{}" when e has none).
func (e Event) Recorded() (id uuid.UUID, metadata []byte, err error) {
	id = e.ID
	if id == uuid.Nil {
		if id, err = uuid.NewV7(); err != nil {
			return id, nil, err
		}
	}
	if len(e.Metadata) == 0 {
		return id, []byte("{}"), nil
	}
	metadata, err = json.Marshal(e.Metadata)
	return id, metadata, err
}

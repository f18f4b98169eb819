package inmem

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// envelope returns the event at global position pos as a copy that the caller may change.
// The caller holds the lock.
func (s *Store) envelope(pos int64) events.Envelope {
	r := s.log[pos-1]
	e := r.env
	e.Data = clone(r.env.Data)
	// The metadata was marshalled from a map[string]string: it always decodes into one.
	_ = json.Unmarshal(r.meta, &e.Metadata)
	return e
}

// ReadStream returns up to limit events of the stream with from <= version <= to (to < 0: to
// the end), in version order. A stream that does not exist reads as empty.
func (s *Store) ReadStream(ctx context.Context, streamID string, from, to int64, limit int) ([]events.Envelope, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: read %s: limit must be positive", events.ErrInvalid, streamID)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[streamID]
	if st == nil {
		return nil, nil
	}
	last := int64(len(st.positions)) - 1
	if to < 0 || to > last {
		to = last
	}
	var out []events.Envelope
	for v := max(from, 0); v <= to && len(out) < limit; v++ {
		out = append(out, s.envelope(st.positions[v]))
	}
	return out, nil
}

// ReadAll returns a page of every stream's events in global-position order, filtered as q
// says. It is commit-safe as events.AllReader asks: an append here is whole when it returns,
// under the lock, so no position is ever handed out before the ones below it are readable.
func (s *Store) ReadAll(ctx context.Context, q events.AllQuery) ([]events.Envelope, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: read all: limit must be positive", events.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []events.Envelope
	for pos := max(q.After, 0) + 1; pos <= int64(len(s.log)) && len(out) < q.Limit; pos++ {
		e := &s.log[pos-1].env
		if !q.Since.IsZero() && e.RecordedAt.Before(q.Since) ||
			!q.Until.IsZero() && !e.RecordedAt.Before(q.Until) ||
			len(q.Types) > 0 && !slices.Contains(q.Types, e.Type) {
			continue
		}
		out = append(out, s.envelope(pos))
	}
	return out, nil
}

// Head returns the last position: an append here is complete when it returns, so the
// all-stream is always complete up to its end.
func (s *Store) Head(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int64(len(s.log)), nil
}

// StreamInfo returns the stream's metadata, or ErrNotFound when it has no events.
func (s *Store) StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error) {
	info := events.StreamInfo{StreamID: streamID}
	if err := ctx.Err(); err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[streamID]
	if st == nil {
		return info, fmt.Errorf("stream %s: %w", streamID, events.ErrNotFound)
	}
	info.Category = st.category
	info.Version = int64(len(st.positions)) - 1
	info.EventCount = int64(len(st.positions))
	info.CreatedAt = st.createdAt
	info.UpdatedAt = s.log[st.positions[info.Version]-1].env.RecordedAt
	return info, nil
}

// Stats counts the events and streams and returns the recent most recent events, newest
// first.
func (s *Store) Stats(ctx context.Context, recent int) (events.Stats, error) {
	st := events.Stats{EventsByType: map[string]int64{}, RecentEvents: []events.Envelope{}}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for t, n := range s.byType {
		st.EventsByType[t] = n
	}
	st.TotalEvents = int64(len(s.log))
	st.TotalStreams = int64(len(s.streams))
	for pos := int64(len(s.log)); pos >= 1 && len(st.RecentEvents) < recent; pos-- {
		st.RecentEvents = append(st.RecentEvents, s.envelope(pos))
	}
	return st, nil
}

// VersionAt is the version of the stream's last event recorded at or before t; -1 if none.
func (s *Store) VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[streamID]
	if st == nil {
		return -1, nil
	}
	// Recording times increase with the version: find the first one after t.
	n := sort.Search(len(st.positions), func(v int) bool {
		return s.log[st.positions[v]-1].env.RecordedAt.After(t)
	})
	return int64(n) - 1, nil
}

// Package inmem is an event store held in memory: an events.Store for unit tests, examples and
// trying the library out without a database. It passes the same contract suite
// (eventstest.TestStore) as the PostgreSQL store, so code written against events.Store behaves
// the same on both, and it refuses bad input with the same errors.
//
// The package is named after what it keeps its data in, as pkg/events/postgres is: in the
// manner of benbjohnson/wtf's inmem, it reads inmem.New() at the call site.
//
// Everything lives in the process's memory, guarded by one lock, and is lost when the Store
// is dropped: it must never be used in production or wherever events have to survive a
// restart. It has no outbox either, so nothing appended here ever reaches the relay or Kafka.
package inmem

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// Options tune a Store.
type Options struct {
	// MaxEventsPerStream refuses appends that would take a stream past this many events, as
	// the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventsPerStream int
	// MaxEventBytes refuses appends with an event larger than this (events.Event.Size, data
	// and metadata), as the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventBytes int
}

// Store is an in-memory event store. It is safe for concurrent use; the zero value is not
// usable, call New.
//
// Recording times are kept to the microsecond, as PostgreSQL keeps them, and increase
// strictly from one append to the next. Global positions start at 1 and have no gaps.
type Store struct {
	opts Options

	mu      sync.RWMutex
	log     []record           // every event, in global-position order: position i+1 is log[i]
	streams map[string]*stream // by stream id
	ids     map[uuid.UUID]bool // every recorded event id
	byType  map[string]int64   // event counts by type
	snaps   map[string][]events.Snapshot
	keys    map[string]events.IdempotentAppend // idempotency keys (idempotency.go)
	last    time.Time                          // the last time handed out by now
}

// record is one stored event. Its metadata is kept as JSON, as PostgreSQL keeps it, so that
// every read decodes a map of its own.
type record struct {
	env  events.Envelope // Metadata is nil here
	meta []byte
}

type stream struct {
	category  string
	createdAt time.Time
	positions []int64 // the global position of each version
}

var _ events.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	return &Store{
		opts:    opts,
		streams: map[string]*stream{},
		ids:     map[uuid.UUID]bool{},
		byType:  map[string]int64{},
		snaps:   map[string][]events.Snapshot{},
		keys:    map[string]events.IdempotentAppend{},
	}
}

// now is the store's clock: UTC to the microsecond, strictly after every time it returned
// before. The caller holds the write lock.
func (s *Store) now() time.Time {
	t := time.Now().UTC().Truncate(time.Microsecond)
	if !t.After(s.last) {
		t = s.last.Add(time.Microsecond)
	}
	s.last = t
	return t
}

// Append appends the events to the stream if it is at the expected version: all of them, or
// none and an error. With opts.Idempotency it records the key with them, and refuses a key
// recorded before with events.ErrIdempotencyKeyTaken.
func (s *Store) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	res := events.AppendResult{StreamID: streamID}
	recs, err := s.prepare(streamID, evs, opts)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("append %s: %w", streamID, err)
	}

	if k := opts.Idempotency; k != nil && k.Key == "" {
		return res, fmt.Errorf("%w: append %s: empty idempotency key", events.ErrInvalid, streamID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if k := opts.Idempotency; k != nil {
		if _, taken := s.keys[k.Key]; taken {
			return res, fmt.Errorf("append %s: %w", streamID, events.ErrIdempotencyKeyTaken)
		}
	}
	st := s.streams[streamID]
	actual := int64(-1)
	if st != nil {
		actual = int64(len(st.positions)) - 1
	}
	if !expected.Allows(actual) {
		return res, &events.VersionConflictError{StreamID: streamID, Expected: expected, Actual: actual}
	}
	if limit := s.opts.MaxEventsPerStream; limit > 0 && actual+int64(len(recs)) >= int64(limit) {
		return res, &events.StreamFullError{StreamID: streamID, Version: actual, Appending: len(recs), Max: limit}
	}
	seen := make(map[uuid.UUID]bool, len(recs))
	for _, r := range recs {
		if s.ids[r.env.EventID] || seen[r.env.EventID] {
			return res, fmt.Errorf("%w: append %s: an event with this id is already recorded", events.ErrInvalid, streamID)
		}
		seen[r.env.EventID] = true
	}

	// Nothing can fail from here on: the append is all or nothing.
	at := s.now()
	if st == nil {
		st = &stream{category: events.Category(streamID), createdAt: at}
		s.streams[streamID] = st
	}
	res.EventIDs = make([]uuid.UUID, len(recs))
	for i, r := range recs {
		r.env.Version = actual + 1 + int64(i)
		r.env.GlobalPosition = int64(len(s.log)) + 1
		r.env.RecordedAt = at
		s.log = append(s.log, r)
		s.ids[r.env.EventID] = true
		s.byType[r.env.Type]++
		st.positions = append(st.positions, r.env.GlobalPosition)
		res.EventIDs[i] = r.env.EventID
	}
	res.FirstVersion, res.LastVersion = actual+1, actual+int64(len(recs))
	res.LastPosition = int64(len(s.log))
	res.FirstPosition = res.LastPosition - int64(len(recs)) + 1
	res.RecordedAt = at
	s.recordKey(opts.Idempotency, res)
	return res, nil
}

// prepare checks the append's input as the PostgreSQL store does (which refuses, besides what
// it checks itself, text that PostgreSQL cannot hold) and copies the events into records.
func (s *Store) prepare(streamID string, evs []events.Event, opts events.AppendOptions) ([]record, error) {
	if err := events.CheckAppend(streamID, evs, opts, events.AppendLimits{MaxEventsPerStream: s.opts.MaxEventsPerStream, MaxEventBytes: s.opts.MaxEventBytes}); err != nil {
		return nil, err
	}
	recs := make([]record, len(evs))
	for i, e := range evs {
		id, meta, err := e.Recorded()
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", streamID, err)
		}
		recs[i] = record{meta: meta, env: events.Envelope{
			EventID: id, StreamID: streamID, Category: events.Category(streamID),
			Type: e.Type, SchemaVersion: max(e.SchemaVersion, 1), Data: clone(e.Data),
			CorrelationID: opts.CorrelationID, CausationID: opts.CausationID,
		}}
	}
	return recs, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

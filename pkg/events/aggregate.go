package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"time"
)

// Definition says how one kind of aggregate is rebuilt from its events.
type Definition[S any] struct {
	// Category is the aggregate type; its streams are "<category>-<id>".
	Category string
	// StateSchemaVersion is the layout version of S in snapshots. Change it whenever S or Apply
	// changes meaning: snapshots of another version are then ignored (full replay), never
	// misapplied.
	StateSchemaVersion int
	// SchemaVersions gives the data-shape version of the event types recorded at a version
	// other than 1 (stored as the event's schema_version).
	SchemaVersions map[string]int
	// Apply evolves the state by one recorded event. It must be deterministic and depend on
	// the event's type and data only: when Record applies a new event, its id, global
	// position and recording time are not known yet. Record applies to a shallow copy of the
	// state and keeps it only on success, so Apply must not change a slice or map of the
	// state in place before it can fail.
	Apply func(state *S, e Envelope) error
}

// Aggregate is one aggregate's state with the events recorded on it since it was loaded.
type Aggregate[S any] struct {
	def      *Definition[S]
	id       string
	streamID string
	loaded   int64 // the stream version it was loaded at; -1 for a new aggregate
	version  int64 // loaded plus the pending events
	state    S
	pending  []Event
	// exact: the last save appended exactly the pending events right after the loaded
	// version, so the state is the stream's state at its new version.
	exact bool
}

// ID is the aggregate's id (the stream id without its category).
func (a *Aggregate[S]) ID() string { return a.id }

// StreamID is "<category>-<id>".
func (a *Aggregate[S]) StreamID() string { return a.streamID }

// State is the current state, pending events included.
func (a *Aggregate[S]) State() S { return a.state }

// Version is the version of the last event applied, pending events included; -1 for none.
func (a *Aggregate[S]) Version() int64 { return a.version }

// LoadedVersion is the stream version the aggregate was loaded at (-1: new).
func (a *Aggregate[S]) LoadedVersion() int64 { return a.loaded }

// Exists reports whether the aggregate has any event, stored or pending.
func (a *Aggregate[S]) Exists() bool { return a.version >= 0 }

// Pending returns the events recorded since loading.
func (a *Aggregate[S]) Pending() []Event { return a.pending }

// Record applies a new event to the state and keeps it for Save. An event that Apply
// rejects is not kept.
func (a *Aggregate[S]) Record(eventType string, data any) error {
	ev, err := NewEvent(eventType, data)
	if err != nil {
		return err
	}
	ev.SchemaVersion = max(a.def.SchemaVersions[eventType], 1)
	env := Envelope{
		StreamID: a.streamID, Category: a.def.Category, Version: a.version + 1,
		Type: ev.Type, SchemaVersion: ev.SchemaVersion, Data: ev.Data, RecordedAt: time.Now().UTC(),
	}
	next := a.state
	if err := a.def.Apply(&next, env); err != nil {
		return fmt.Errorf("apply %s to %s: %w", eventType, a.streamID, err)
	}
	a.state = next
	a.pending = append(a.pending, ev)
	a.version++
	return nil
}

// LoadInfo tells how a Load was served.
type LoadInfo struct {
	// SnapshotVersion is the version of the snapshot used; -1 when none was.
	SnapshotVersion int64
	// EventsRead counts the events read and applied after the snapshot.
	EventsRead int
}

// Repository loads and saves aggregates of one Definition.
type Repository[S any] struct {
	Store Store
	Def   Definition[S]
	// SnapshotEvery takes a snapshot whenever a save crosses a multiple of this many events;
	// 0 disables snapshots (loads then never use them either).
	SnapshotEvery int
	// PageSize is the number of events read per query (500 when zero).
	PageSize int
	// SnapshotErrors, when set, receives the errors of snapshots that Save could not take.
	SnapshotErrors func(error)
}

// New returns an aggregate that does not exist yet.
func (r *Repository[S]) New(id string) *Aggregate[S] {
	return &Aggregate[S]{def: &r.Def, id: id, streamID: StreamID(r.Def.Category, id), loaded: -1, version: -1}
}

// Load rebuilds the aggregate from its latest usable snapshot and the events after it.
// It returns ErrNotFound when the stream has no events.
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], LoadInfo, error) {
	return r.LoadVersion(ctx, id, math.MaxInt64)
}

// LoadVersion rebuilds the aggregate as it was at version v.
func (r *Repository[S]) LoadVersion(ctx context.Context, id string, v int64) (*Aggregate[S], LoadInfo, error) {
	a := r.New(id)
	info := LoadInfo{SnapshotVersion: -1}
	if v < 0 {
		return nil, info, fmt.Errorf("%s: %w", a.streamID, ErrNotFound)
	}
	page := r.PageSize
	if page <= 0 {
		page = 500
	}
	// apply replays one page of events after the state, and reports whether the stream may
	// have more of them up to v.
	apply := func(evs []Envelope) (bool, error) {
		for _, e := range evs {
			if e.Version != a.version+1 {
				return false, fmt.Errorf("%s: read version %d after %d: the stream has a gap", a.streamID, e.Version, a.version)
			}
			if err := r.Def.Apply(&a.state, e); err != nil {
				return false, fmt.Errorf("replay %s version %d (%s): %w", a.streamID, e.Version, e.Type, err)
			}
			a.version = e.Version
		}
		info.EventsRead += len(evs)
		return len(evs) == page && a.version < v, nil
	}
	more := true
	if r.SnapshotEvery > 0 {
		var snap Snapshot
		var ok bool
		var evs []Envelope // with read: the first page after the snapshot, or of the stream
		var err error
		sr, read := r.Store.(SnapshotStreamReader)
		if read {
			snap, ok, evs, err = sr.ReadFromSnapshot(ctx, a.streamID, r.Def.StateSchemaVersion, v, page)
		} else {
			snap, ok, err = r.Store.LatestSnapshot(ctx, a.streamID, r.Def.StateSchemaVersion, v)
		}
		if err != nil {
			return nil, info, err
		}
		var state S
		if ok && json.Unmarshal(snap.State, &state) == nil {
			a.state, a.loaded, a.version = state, snap.Version, snap.Version
			info.SnapshotVersion = snap.Version
		} else if ok {
			read = false // the events after a snapshot that cannot be used are of no use
		}
		if read {
			if more, err = apply(evs); err != nil {
				return nil, info, err
			}
		}
	}
	for more && a.version < v {
		evs, err := r.Store.ReadStream(ctx, a.streamID, a.version+1, v, page)
		if err != nil {
			return nil, info, err
		}
		if more, err = apply(evs); err != nil {
			return nil, info, err
		}
	}
	if a.version < 0 {
		return nil, info, fmt.Errorf("%s: %w", a.streamID, ErrNotFound)
	}
	if v != math.MaxInt64 && a.version != v {
		return nil, info, fmt.Errorf("%s has no version %d (it is at %d): %w", a.streamID, v, a.version, ErrNotFound)
	}
	a.loaded = a.version
	return a, info, nil
}

// LoadAt rebuilds the aggregate as it was at time t.
func (r *Repository[S]) LoadAt(ctx context.Context, id string, t time.Time) (*Aggregate[S], LoadInfo, error) {
	v, err := r.Store.VersionAt(ctx, StreamID(r.Def.Category, id), t)
	if err != nil {
		return nil, LoadInfo{SnapshotVersion: -1}, err
	}
	if v < 0 {
		return nil, LoadInfo{SnapshotVersion: -1}, fmt.Errorf("%s did not exist at %s: %w",
			StreamID(r.Def.Category, id), t.UTC().Format(time.RFC3339Nano), ErrNotFound)
	}
	return r.LoadVersion(ctx, id, v)
}

// ErrNothingToSave: Save was called on an aggregate without pending events.
var ErrNothingToSave = errors.New("no pending events")

// Save appends the pending events, expecting the stream to be where the aggregate was
// loaded, then takes a snapshot when the append crossed a multiple of SnapshotEvery. A failed
// snapshot does not fail the save (snapshots only speed loads up); it is passed to
// SnapshotErrors when set.
func (r *Repository[S]) Save(ctx context.Context, a *Aggregate[S], opts AppendOptions) (AppendResult, error) {
	res, err := r.SaveWith(ctx, r.Store, a, opts)
	if err != nil {
		return res, err
	}
	if err := r.Snapshot(ctx, a, res); err != nil && r.SnapshotErrors != nil {
		r.SnapshotErrors(err)
	}
	return res, nil
}

// SaveWith is Save through another Appender, for example one bound to a transaction that
// writes more rows, and without the snapshot: the transaction has not committed yet, and a
// snapshot must never describe a version that may roll back. Call Snapshot after the commit.
func (r *Repository[S]) SaveWith(ctx context.Context, app Appender, a *Aggregate[S], opts AppendOptions) (AppendResult, error) {
	if len(a.pending) == 0 {
		return AppendResult{}, ErrNothingToSave
	}
	res, err := app.Append(ctx, a.streamID, Exact(a.loaded), withMetadata(a.pending, opts.Metadata), opts)
	if err != nil {
		return res, err
	}
	// The in-memory state is the stream's state only if exactly our events were appended
	// right after the loaded version (always, unless optimistic concurrency is off).
	a.exact = res.FirstVersion == a.loaded+1 && res.LastVersion == a.version
	a.pending = nil
	a.loaded = res.LastVersion
	a.version = res.LastVersion
	return res, nil
}

// withMetadata returns evs with md added to each one's metadata (the event's own keys win),
// leaving evs as they are.
func withMetadata(evs []Event, md map[string]string) []Event {
	if len(md) == 0 {
		return evs
	}
	out := make([]Event, len(evs))
	for i, ev := range evs {
		m := make(map[string]string, len(md)+len(ev.Metadata))
		maps.Copy(m, md)
		maps.Copy(m, ev.Metadata)
		ev.Metadata = m
		out[i] = ev
	}
	return out
}

// Snapshot stores the aggregate's state after a committed save res, when that save crossed a
// multiple of SnapshotEvery and the state is exactly the stream's at res.LastVersion.
func (r *Repository[S]) Snapshot(ctx context.Context, a *Aggregate[S], res AppendResult) error {
	every := int64(r.SnapshotEvery)
	if every <= 0 || !a.exact || a.version != res.LastVersion || len(a.pending) > 0 ||
		res.FirstVersion/every == (res.LastVersion+1)/every {
		return nil
	}
	state, err := marshal(a.state) // text as it is, as in events
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", a.streamID, err)
	}
	return r.Store.SaveSnapshot(ctx, Snapshot{
		StreamID: a.streamID, Version: res.LastVersion,
		StateSchemaVersion: r.Def.StateSchemaVersion, State: state,
	})
}

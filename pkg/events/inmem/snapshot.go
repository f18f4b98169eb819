package inmem

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// SaveSnapshot stores a snapshot; one that exists already (same stream, state-schema version
// and version) is kept as it is. A state that is not JSON is refused with ErrInvalid.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if !json.Valid(snap.State) {
		return fmt.Errorf("%w: snapshot %s@%d: state is not valid JSON", events.ErrInvalid, snap.StreamID, snap.Version)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.snaps[snap.StreamID] {
		if old.StateSchemaVersion == snap.StateSchemaVersion && old.Version == snap.Version {
			return nil
		}
	}
	snap.State = clone(snap.State)
	snap.CreatedAt = s.now()
	s.snaps[snap.StreamID] = append(s.snaps[snap.StreamID], snap)
	return nil
}

// LatestSnapshot returns the newest snapshot of the stream with the given state-schema version
// and a version <= maxVersion; false when there is none.
func (s *Store) LatestSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64) (events.Snapshot, bool, error) {
	best := events.Snapshot{StreamID: streamID, StateSchemaVersion: stateSchemaVersion}
	if err := ctx.Err(); err != nil {
		return best, false, fmt.Errorf("snapshot of %s: %w", streamID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	found := false
	for _, snap := range s.snaps[streamID] {
		if snap.StateSchemaVersion == stateSchemaVersion && snap.Version <= maxVersion && (!found || snap.Version > best.Version) {
			best, found = snap, true
		}
	}
	best.State = clone(best.State)
	return best, found, nil
}

// PruneSnapshots deletes snapshots created more than retention ago, except the newest of each
// stream (the highest version, then state-schema version), and returns how many it deleted.
func (s *Store) PruneSnapshots(ctx context.Context, retention time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := s.now().Add(-retention)
	var n int64
	for id, snaps := range s.snaps {
		newest := slices.MaxFunc(snaps, func(a, b events.Snapshot) int {
			if a.Version != b.Version {
				return cmp.Compare(a.Version, b.Version)
			}
			return cmp.Compare(a.StateSchemaVersion, b.StateSchemaVersion)
		})
		kept := snaps[:0]
		for _, snap := range snaps {
			if snap.CreatedAt.Before(cutoff) && (snap.Version != newest.Version || snap.StateSchemaVersion != newest.StateSchemaVersion) {
				n++
				continue
			}
			kept = append(kept, snap)
		}
		s.snaps[id] = kept
	}
	return n, nil
}

// DeleteSnapshots deletes every snapshot of the stream, of every state-schema version, and
// returns how many it deleted.
func (s *Store) DeleteSnapshots(ctx context.Context, streamID string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("delete snapshots of %s: %w", streamID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(len(s.snaps[streamID]))
	delete(s.snaps, streamID)
	return n, nil
}

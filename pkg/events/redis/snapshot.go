package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/pkg/events"
)

// storedSnapshot is a snapshot as the store keeps it: State as a string, kept byte for byte.
type storedSnapshot struct {
	State     string `json:"state"`
	CreatedAt int64  `json:"created_at"` // µs since the Unix epoch
}

// snapshotField names a snapshot in its stream's hash.
func snapshotField(ssv int, version int64) string {
	return strconv.Itoa(ssv) + ":" + strconv.FormatInt(version, 10)
}

// SaveSnapshot stores a snapshot; one that exists already (same stream, state-schema version
// and version) is kept as it is. A state that is not JSON is refused with ErrInvalid.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if !json.Valid(snap.State) {
		return fmt.Errorf("%w: snapshot %s@%d: state is not valid JSON", events.ErrInvalid, snap.StreamID, snap.Version)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	raw, err := json.Marshal(storedSnapshot{State: string(snap.State), CreatedAt: time.Now().UnixMicro()})
	if err != nil {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	// HSETNX keeps a snapshot that exists; ZADD of the same version again changes nothing.
	pipe := s.rdb.TxPipeline()
	pipe.HSetNX(ctx, s.keySnapshots(snap.StreamID), snapshotField(snap.StateSchemaVersion, snap.Version), raw)
	pipe.ZAdd(ctx, s.keySnapshotVersions(snap.StreamID, snap.StateSchemaVersion),
		goredis.Z{Score: float64(snap.Version), Member: strconv.FormatInt(snap.Version, 10)})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}

// LatestSnapshot returns the newest snapshot of the stream with the given state-schema version
// and a version <= maxVersion; false when there is none.
func (s *Store) LatestSnapshot(ctx context.Context, streamID string, stateSchemaVersion int, maxVersion int64) (events.Snapshot, bool, error) {
	snap := events.Snapshot{StreamID: streamID, StateSchemaVersion: stateSchemaVersion}
	if err := ctx.Err(); err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: %w", streamID, err)
	}
	members, err := s.rdb.ZRevRangeByScore(ctx, s.keySnapshotVersions(streamID, stateSchemaVersion), &goredis.ZRangeBy{
		Max: strconv.FormatInt(maxVersion, 10), Min: "-inf", Count: 1,
	}).Result()
	if err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: %w", streamID, err)
	}
	if len(members) == 0 {
		return snap, false, nil
	}
	if snap.Version, err = strconv.ParseInt(members[0], 10, 64); err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: version %q: %w", streamID, members[0], err)
	}
	raw, err := s.rdb.HGet(ctx, s.keySnapshots(streamID), snapshotField(stateSchemaVersion, snap.Version)).Result()
	if errors.Is(err, goredis.Nil) {
		return snap, false, fmt.Errorf("snapshot of %s@%d: %w", streamID, snap.Version, errCorrupt)
	}
	if err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: %w", streamID, err)
	}
	var st storedSnapshot
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return snap, false, fmt.Errorf("snapshot of %s@%d: %w", streamID, snap.Version, err)
	}
	snap.State = json.RawMessage(st.State)
	snap.CreatedAt = time.UnixMicro(st.CreatedAt).UTC()
	return snap, true, nil
}

// DeleteSnapshots deletes every snapshot of the stream, of every state-schema version, and
// returns how many it deleted. The state-schema versions come from the stream's hash of
// snapshots, whose fields name them; the hash and the sorted sets go in one transaction.
func (s *Store) DeleteSnapshots(ctx context.Context, streamID string) (int64, error) {
	fields, err := s.rdb.HKeys(ctx, s.keySnapshots(streamID)).Result()
	if err != nil {
		return 0, fmt.Errorf("delete snapshots of %s: %w", streamID, err)
	}
	if len(fields) == 0 {
		return 0, nil
	}
	keys := []string{s.keySnapshots(streamID)}
	seen := map[string]bool{}
	for _, f := range fields {
		ssv, _, ok := strings.Cut(f, ":")
		n, err := strconv.Atoi(ssv)
		if !ok || err != nil {
			return 0, fmt.Errorf("delete snapshots of %s: field %q: %w", streamID, f, errCorrupt)
		}
		if !seen[ssv] {
			seen[ssv] = true
			keys = append(keys, s.keySnapshotVersions(streamID, n))
		}
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return 0, fmt.Errorf("delete snapshots of %s: %w", streamID, err)
	}
	return int64(len(fields)), nil
}

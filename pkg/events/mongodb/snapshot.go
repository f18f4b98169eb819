package mongodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
)

// snapshotDoc is one snapshot; (stream, ssv, version) is unique.
type snapshotDoc struct {
	Stream  string `bson:"stream"`
	SSV     int    `bson:"ssv"`
	Version int64  `bson:"version"`
	State   string `bson:"state"`
	At      int64  `bson:"at"` // Unix microseconds
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
	_, err := s.snapshots.InsertOne(ctx, snapshotDoc{
		Stream: snap.StreamID, SSV: snap.StateSchemaVersion, Version: snap.Version,
		State: string(snap.State), At: time.Now().UnixMicro(),
	})
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("snapshot %s@%d: %w", snap.StreamID, snap.Version, wrapCtx(ctx, err))
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
	var d snapshotDoc
	err := s.snapshots.FindOne(ctx,
		bson.D{{Key: "stream", Value: streamID}, {Key: "ssv", Value: stateSchemaVersion}, {Key: "version", Value: bson.D{{Key: "$lte", Value: maxVersion}}}},
		options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return snap, false, nil
	}
	if err != nil {
		return snap, false, fmt.Errorf("snapshot of %s: %w", streamID, wrapCtx(ctx, err))
	}
	snap.Version, snap.State, snap.CreatedAt = d.Version, json.RawMessage(d.State), micro(d.At)
	return snap, true, nil
}

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

// PruneSnapshots deletes the snapshots created more than retention ago, except the newest of
// each stream (the highest version, then state-schema version), and returns how many it
// deleted. It reads the old snapshots' keys, then deletes them stream by stream.
func (s *Store) PruneSnapshots(ctx context.Context, retention time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", err)
	}
	cutoff := time.Now().Add(-retention).UnixMicro()
	// Not distinct: FerretDB refuses it with maxTimeMS, which the driver sends under a client
	// timeout.
	cur, err := s.snapshots.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: cutoff}}}},
		options.Find().SetProjection(bson.D{{Key: "stream", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", wrapCtx(ctx, err))
	}
	var old []struct {
		Stream string `bson:"stream"`
	}
	if err := cur.All(ctx, &old); err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", wrapCtx(ctx, err))
	}
	streams := map[string]bool{}
	for _, o := range old {
		streams[o.Stream] = true
	}
	var n int64
	for stream := range streams {
		var newest struct {
			ID bson.ObjectID `bson:"_id"`
		}
		err := s.snapshots.FindOne(ctx, bson.D{{Key: "stream", Value: stream}},
			options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}, {Key: "ssv", Value: -1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}),
		).Decode(&newest)
		if err != nil {
			return n, fmt.Errorf("prune snapshots of %s: %w", stream, wrapCtx(ctx, err))
		}
		res, err := s.snapshots.DeleteMany(ctx, bson.D{
			{Key: "stream", Value: stream},
			{Key: "at", Value: bson.D{{Key: "$lte", Value: cutoff}}},
			{Key: "_id", Value: bson.D{{Key: "$ne", Value: newest.ID}}},
		})
		if err != nil {
			return n, fmt.Errorf("prune snapshots of %s: %w", stream, wrapCtx(ctx, err))
		}
		n += res.DeletedCount
	}
	return n, nil
}

// DeleteSnapshots deletes every snapshot of the stream, of every state-schema version, and
// returns how many it deleted.
func (s *Store) DeleteSnapshots(ctx context.Context, streamID string) (int64, error) {
	res, err := s.snapshots.DeleteMany(ctx, bson.D{{Key: "stream", Value: streamID}})
	if err != nil {
		return 0, fmt.Errorf("delete snapshots of %s: %w", streamID, err)
	}
	return res.DeletedCount, nil
}

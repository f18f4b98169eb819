package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
)

var _ events.IdempotencyStore = (*Store)(nil)

// keyFree returns an error wrapping events.ErrIdempotencyKeyTaken when an append recorded the
// key already, and nil when it did not or key is empty. Append asks before it records
// anything, and again after an insert collided, to tell a taken key from a taken position:
// the unique index on the key is what refuses the second append, this only names why.
func (s *Store) keyFree(ctx context.Context, streamID, key string) error {
	if key == "" {
		return nil
	}
	n, err := s.appends.CountDocuments(ctx, bson.D{{Key: "ik", Value: key}}, options.Count().SetLimit(1))
	if err != nil {
		return fmt.Errorf("append %s: idempotency key: %w", streamID, wrapCtx(ctx, err))
	}
	if n > 0 {
		return fmt.Errorf("append %s: %w", streamID, events.ErrIdempotencyKeyTaken)
	}
	return nil
}

// LookupIdempotency returns what the append that carried key recorded; false when no append
// did (or its record was pruned). The result is rebuilt from the append's document: every
// field of the AppendResult is filled.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (events.IdempotentAppend, bool, error) {
	rec := events.IdempotentAppend{Key: key}
	var d appendDoc
	err := s.appends.FindOne(ctx, bson.D{{Key: "ik", Value: key}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("idempotency key: %w", wrapCtx(ctx, err))
	}
	ids := make([]uuid.UUID, len(d.Events))
	for i, e := range d.Events {
		if ids[i], err = uuid.Parse(e.ID); err != nil {
			return rec, false, fmt.Errorf("idempotency key: event %d of %s@%d: id: %w", i, d.Stream, d.FirstVersion, err)
		}
	}
	rec.RequestHash, rec.Status, rec.RecordedAt = d.KeyHash, d.KeyStatus, micro(d.KeyAt)
	rec.Result = events.AppendResult{
		StreamID: d.Stream, FirstVersion: d.FirstVersion, LastVersion: d.LastVersion,
		FirstPosition: d.First, LastPosition: d.Last, EventIDs: ids, RecordedAt: micro(d.At),
	}
	return rec, true, nil
}

// PruneIdempotency removes the idempotency records made more than ttl ago from their appends'
// documents (the events stay), and returns how many. It finds them through the sparse index of
// the records' times, which holds only documents with a record, so it never scans the store's
// appends on MongoDB.
func (s *Store) PruneIdempotency(ctx context.Context, ttl time.Duration) (int64, error) {
	cutoff := time.Now().Add(-ttl).UnixMicro()
	res, err := s.appends.UpdateMany(ctx,
		bson.D{{Key: "ikat", Value: bson.D{{Key: "$lt", Value: cutoff}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "ik", Value: ""}, {Key: "ih", Value: ""}, {Key: "is", Value: ""}, {Key: "ikat", Value: ""}}}})
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", wrapCtx(ctx, err))
	}
	return res.ModifiedCount, nil
}

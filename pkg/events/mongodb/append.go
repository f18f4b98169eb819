package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
)

// head is what an append needs of a stream: its version (-1: none) and the recording time of
// its last append.
type head struct {
	version int64
	at      int64
}

// Append appends the events to the stream if it is at the expected version: all of them, or
// none and an error.
func (s *Store) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	res := events.AppendResult{StreamID: streamID}
	doc, ids, err := s.prepare(streamID, evs, opts)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("append %s: %w", streamID, err)
	}
	if err := s.keyFree(ctx, streamID, doc.Key); err != nil {
		return res, err
	}
	h, err := s.head(ctx, streamID)
	if err != nil {
		return res, err
	}
	if err := s.check(streamID, expected, h, len(evs)); err != nil {
		return res, err
	}
	owner, err := s.reserveIDs(ctx, streamID, ids)
	if err != nil {
		return res, err
	}
	if err := s.insert(ctx, streamID, expected, h, &doc); err != nil {
		// Only a refusal frees the ids: after any other error the insert may have landed.
		var conflict *events.VersionConflictError
		if errors.As(err, &conflict) || errors.Is(err, events.ErrStreamFull) || errors.Is(err, events.ErrIdempotencyKeyTaken) {
			s.releaseIDs(owner)
		}
		return res, err
	}
	res.FirstVersion, res.LastVersion = doc.FirstVersion, doc.LastVersion
	res.FirstPosition, res.LastPosition = doc.First, doc.Last
	res.EventIDs = ids
	res.RecordedAt = micro(doc.At)
	s.appended()
	return res, nil
}

// check refuses an append that the stream's head does not allow.
func (s *Store) check(streamID string, expected events.ExpectedVersion, h head, n int) error {
	if !expected.Allows(h.version) {
		return &events.VersionConflictError{StreamID: streamID, Expected: expected, Actual: h.version}
	}
	if limit := s.opts.MaxEventsPerStream; limit > 0 && h.version+int64(n) >= int64(limit) {
		return &events.StreamFullError{StreamID: streamID, Version: h.version, Appending: n, Max: limit}
	}
	return nil
}

// insert inserts the document after head h, at the position after the store's last event.
// The unique _id (the first position), the unique (stream, first version) and the unique
// idempotency key make the insert fail when another append took the same positions, the same
// versions or the same key first; the key and the head tell which: the key taken, a conflict
// under an exact expectation, a new try under one that still holds, and a new try at the next
// free position (another process's append took it).
func (s *Store) insert(ctx context.Context, streamID string, expected events.ExpectedVersion, h head, doc *appendDoc) error {
	n := int64(len(doc.Events))
	// Appends of this Store take the next position one at a time; they would only collide.
	s.next.Lock()
	defer s.next.Unlock()
	for try := 0; ; try++ {
		last, err := s.lastPosition(ctx)
		if err != nil {
			return fmt.Errorf("append %s: %w", streamID, err)
		}
		doc.First, doc.Last = last+1, last+n
		doc.FirstVersion, doc.LastVersion = h.version+1, h.version+n
		doc.At = max(time.Now().UnixMicro(), h.at)
		if doc.Key != "" {
			doc.KeyAt = doc.At
		}
		_, err = s.appends.InsertOne(ctx, doc)
		if err == nil {
			return nil
		}
		if !isDuplicate(err) {
			return fmt.Errorf("append %s: %w", streamID, wrapCtx(ctx, err))
		}
		if err := s.keyFree(ctx, streamID, doc.Key); err != nil {
			return err
		}
		nh, err := s.head(ctx, streamID)
		if err != nil {
			return err
		}
		if nh.version != h.version {
			if err := s.check(streamID, expected, nh, int(n)); err != nil {
				return err
			}
			h = nh
		}
		if err := backoff(ctx, try); err != nil {
			return fmt.Errorf("append %s: %w", streamID, err)
		}
	}
}

// lastPosition is the global position of the store's last event; 0 when it has none.
func (s *Store) lastPosition(ctx context.Context) (int64, error) {
	var d appendDoc
	err := s.appends.FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "last", Value: 1}}),
	).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read last position: %w", wrapCtx(ctx, err))
	}
	return d.Last, nil
}

// backoff waits a little, more after more tries, so that appends that collide on the next
// position spread out; random, so that they do not collide again in step.
func backoff(ctx context.Context, try int) error {
	if try == 0 {
		return ctx.Err() // the first collision retries at once
	}
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(try, 5)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// head reads the stream's last append.
func (s *Store) head(ctx context.Context, streamID string) (head, error) {
	var d appendDoc
	err := s.appends.FindOne(ctx, bson.D{{Key: "stream", Value: streamID}},
		options.FindOne().SetSort(bson.D{{Key: "fv", Value: -1}}).SetProjection(bson.D{{Key: "lv", Value: 1}, {Key: "at", Value: 1}}),
	).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return head{version: -1}, nil
	}
	if err != nil {
		return head{}, fmt.Errorf("append %s: read head: %w", streamID, wrapCtx(ctx, err))
	}
	return head{version: d.LastVersion, at: d.At}, nil
}

// reserveIDs records the event ids, refusing the append with ErrInvalid when one is recorded
// already, and returns the token that releaseIDs takes.
func (s *Store) reserveIDs(ctx context.Context, streamID string, ids []uuid.UUID) (string, error) {
	owner := uuid.NewString()
	docs := make([]any, len(ids))
	for i, id := range ids {
		docs[i] = bson.D{{Key: "_id", Value: id.String()}, {Key: "owner", Value: owner}}
	}
	_, err := s.ids.InsertMany(ctx, docs)
	if err == nil {
		return owner, nil
	}
	s.releaseIDs(owner)
	if isDuplicate(err) {
		return "", fmt.Errorf("%w: append %s: an event with this id is already recorded", events.ErrInvalid, streamID)
	}
	return "", fmt.Errorf("append %s: record event ids: %w", streamID, wrapCtx(ctx, err))
}

// releaseIDs deletes the ids that an append recorded and did not use.
func (s *Store) releaseIDs(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.ids.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}})
}

// prepare checks the append's input as the other stores do and builds its document and the
// list of its event ids.
func (s *Store) prepare(streamID string, evs []events.Event, opts events.AppendOptions) (appendDoc, []uuid.UUID, error) {
	doc := appendDoc{Stream: streamID, Correlation: opts.CorrelationID, Causation: opts.CausationID, Outbox: true}
	if k := opts.Idempotency; k != nil {
		if k.Key == "" {
			return doc, nil, fmt.Errorf("%w: append %s: an empty idempotency key", events.ErrInvalid, streamID)
		}
		doc.Key, doc.KeyHash, doc.KeyStatus = k.Key, k.RequestHash, k.Status
	}
	if err := events.CheckAppend(streamID, evs, opts, events.AppendLimits{MaxEventsPerStream: s.opts.MaxEventsPerStream, MaxEventBytes: s.opts.MaxEventBytes}); err != nil {
		return doc, nil, err
	}
	doc.Events = make([]eventDoc, len(evs))
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		id, meta, err := e.Recorded()
		if err != nil {
			return doc, nil, fmt.Errorf("append %s: %w", streamID, err)
		}
		ids[i] = id
		doc.Events[i] = eventDoc{ID: id.String(), Type: e.Type, SchemaVersion: max(e.SchemaVersion, 1), Data: string(e.Data), Meta: string(meta)}
	}
	return doc, ids, nil
}

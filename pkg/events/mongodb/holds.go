package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// The operator's side of held streams: list them, release them so that the relay tries their
// held append again, or give up on a held append deliberately. Each runs beside a running
// relay, with writes that are each atomic and that leave, if cut short, a state the same
// command finishes when run again.

// Holds lists the held streams, oldest hold first.
func (o *Outbox) Holds(ctx context.Context) ([]outbox.Hold, error) {
	docs, err := o.findHolds(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("outbox holds: %w", err)
	}
	holds := make([]outbox.Hold, len(docs))
	for i, d := range docs {
		if holds[i], err = o.hold(ctx, d); err != nil {
			return nil, fmt.Errorf("outbox holds: %w", err)
		}
	}
	return holds, nil
}

func (o *Outbox) findHolds(ctx context.Context, filter bson.D) ([]holdDoc, error) {
	cur, err := o.holds.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []holdDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	return docs, nil
}

// hold is the hold of d, with the number of its stream's appends in the outbox.
func (o *Outbox) hold(ctx context.Context, d holdDoc) (outbox.Hold, error) {
	n, err := o.appends.CountDocuments(ctx, bson.D{{Key: "stream", Value: d.Stream}, {Key: "ob", Value: true}})
	if err != nil {
		return outbox.Hold{}, wrapCtx(ctx, err)
	}
	return outbox.Hold{
		StreamID: d.Stream, Category: d.Category, FirstVersion: d.First, LastVersion: d.Last,
		Reason: d.Reason, HeldAt: micro(d.At), Waiting: n,
	}, nil
}

// Retry releases the hold of a stream: the relay reads its held append again, and publishes it
// with the appends behind it if it can now (the missing schema deployed, the topic's
// max.message.bytes raised), or holds the stream again with the new reason. It returns the
// hold it released, or an error wrapping outbox.ErrNotHeld.
func (o *Outbox) Retry(ctx context.Context, streamID string) (outbox.Hold, error) {
	holds, err := o.release(ctx, bson.D{{Key: "_id", Value: streamID}})
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, err)
	}
	if len(holds) == 0 {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, outbox.ErrNotHeld)
	}
	return holds[0], nil
}

// RetryAll releases every hold, as Retry does, and returns those it released.
func (o *Outbox) RetryAll(ctx context.Context) ([]outbox.Hold, error) {
	holds, err := o.release(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("retry all: %w", err)
	}
	return holds, nil
}

// release deletes the holds the filter selects, then returns their streams' appends to the
// flow; a hold that another command deleted first is not counted. Deleting first means that a
// relay marking appends behind the hold meanwhile finds it gone and undoes its marks (Settle).
func (o *Outbox) release(ctx context.Context, filter bson.D) ([]outbox.Hold, error) {
	docs, err := o.findHolds(ctx, filter)
	if err != nil {
		return nil, err
	}
	var holds []outbox.Hold
	for _, d := range docs {
		h, err := o.hold(ctx, d)
		if err != nil {
			return holds, err
		}
		res, err := o.holds.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.Stream}, {Key: "fv", Value: d.First}, {Key: "at", Value: d.At}})
		if err != nil {
			return holds, wrapCtx(ctx, err)
		}
		if err := unhold(ctx, o, []string{d.Stream}); err != nil {
			return holds, err
		}
		if res.DeletedCount > 0 {
			holds = append(holds, h)
		}
	}
	return holds, nil
}

// ErrSkipUnexplained: a skip needs who decides it and why.
var ErrSkipUnexplained = errors.New("a skip needs who decides it and why")

// Skip gives up on a stream's held append, which must start at firstVersion: it leaves the
// outbox, its document keeps the hold's reason and who skipped it and why (field "dead"), and
// the appends behind it return to the flow and are published. Its events stay in the store.
// Consumers that check stream versions will see the gap. It returns the hold it ended, or an
// error wrapping outbox.ErrNotHeld when the stream is not held at that version.
//
// The append is marked skipped before the hold is deleted: cut short in between, the hold
// stays, and Skip run again ends it.
func (o *Outbox) Skip(ctx context.Context, streamID string, firstVersion int64, by, why string) (outbox.Hold, error) {
	if by == "" || why == "" {
		return outbox.Hold{}, fmt.Errorf("skip %s: %w", streamID, ErrSkipUnexplained)
	}
	docs, err := o.findHolds(ctx, bson.D{{Key: "_id", Value: streamID}})
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	if len(docs) == 0 {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, outbox.ErrNotHeld)
	}
	d := docs[0]
	if d.First != firstVersion {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w at version %d: it is held at version %d", streamID, firstVersion, outbox.ErrNotHeld, firstVersion, d.First)
	}
	h, err := o.hold(ctx, d)
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	dead := deadDoc{Reason: d.Reason, By: by, Why: why, At: time.Now().UnixMicro()}
	if _, err := o.appends.UpdateOne(ctx, bson.D{{Key: "stream", Value: streamID}, {Key: "fv", Value: firstVersion}, {Key: "ob", Value: true}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "ob", Value: ""}, {Key: "held", Value: ""}}}, {Key: "$set", Value: bson.D{{Key: "dead", Value: dead}}}}); err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, wrapCtx(ctx, err))
	}
	if _, err := o.holds.DeleteOne(ctx, bson.D{{Key: "_id", Value: streamID}, {Key: "fv", Value: firstVersion}}); err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, wrapCtx(ctx, err))
	}
	if err := unhold(ctx, o, []string{streamID}); err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	return h, nil
}

// Empty reports whether no append waits in the outbox to be published.
func (o *Outbox) Empty(ctx context.Context) (bool, error) {
	n, err := o.appends.CountDocuments(ctx, bson.D{{Key: "ob", Value: true}}, options.Count().SetLimit(1))
	if err != nil {
		return false, fmt.Errorf("outbox: %w", wrapCtx(ctx, err))
	}
	return n == 0, nil
}

// Waiting counts the appends that wait in the outbox to be published. On FerretDB it scans
// the appends: call it now and then, never once per event.
func (o *Outbox) Waiting(ctx context.Context) (int64, error) {
	n, err := o.appends.CountDocuments(ctx, bson.D{{Key: "ob", Value: true}})
	if err != nil {
		return 0, fmt.Errorf("outbox: %w", wrapCtx(ctx, err))
	}
	return n, nil
}

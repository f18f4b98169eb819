package mongodb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
)

// unpublished selects the appends in the outbox that are not marked held.
var unpublished = bson.D{{Key: "ob", Value: true}, {Key: "held", Value: bson.D{{Key: "$ne", Value: true}}}}

// Pending reads, oldest first, the appends in the outbox not marked held that start within
// maxEvents events and whose events' data and metadata, with those of the appends before
// theirs, fit in maxBytes (the first one's whatever their size), each with its stream's Head
// and whether its stream is held, sorted by stream and version.
//
// Positions become visible in order (see the package doc), and an append leaves the outbox
// only when it is settled, so the oldest unpublished append is always the first one read:
// nothing is skipped. An append's stream head is the first version of its oldest append still
// in the outbox: the first of its stream in the window, unless an append of the stream marked
// held lies before it (a hold released a moment ago, its appends not yet returned).
func (s *session) Pending(ctx context.Context, maxEvents int, maxBytes int64) ([]outbox.Append, error) {
	if err := s.fence(); err != nil {
		return nil, err
	}
	maxEvents = max(maxEvents, 1)
	cur, err := s.o.appends.Find(ctx, unpublished, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(maxEvents)))
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", wrapCtx(ctx, err))
	}
	var docs []appendDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read outbox: %w", wrapCtx(ctx, err))
	}
	var n int
	var size int64
	heads := map[string]int64{}
	var streams []string
	for i, d := range docs {
		b := d.bytes()
		if n >= maxEvents || i > 0 && size+b > maxBytes {
			docs = docs[:i]
			break
		}
		n, size = n+len(d.Events), size+b
		if _, ok := heads[d.Stream]; !ok {
			heads[d.Stream] = d.FirstVersion
			streams = append(streams, d.Stream)
		}
	}
	if len(docs) == 0 {
		s.read = nil
		return nil, nil
	}
	held, err := s.heldStreams(ctx, streams)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	if err := s.markedHeads(ctx, streams, heads); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	s.read = make(map[appendKey]readAppend, len(docs))
	window := make([]outbox.Append, len(docs))
	for i := range docs {
		d := &docs[i]
		envs, err := d.envelopes()
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		window[i] = outbox.Append{
			StreamID: d.Stream, Category: events.Category(d.Stream), FirstVersion: d.FirstVersion, LastVersion: d.LastVersion,
			CreatedAt: micro(d.At), Head: heads[d.Stream], Held: held[d.Stream], Bytes: d.bytes(), Events: envs,
		}
		s.read[appendKey{d.Stream, d.FirstVersion}] = readAppend{position: d.First, last: d.LastVersion}
	}
	slices.SortFunc(window, func(a, b outbox.Append) int {
		if c := strings.Compare(a.StreamID, b.StreamID); c != 0 {
			return c
		}
		return cmp.Compare(a.FirstVersion, b.FirstVersion)
	})
	return window, nil
}

// bytes is the size of the append's events' data and metadata, as the read's byte budget
// counts it.
func (d *appendDoc) bytes() int64 {
	var n int64
	for _, e := range d.Events {
		n += int64(len(e.Data) + len(e.Meta))
	}
	return n
}

// heldStreams reports which of the streams have a hold.
func (s *session) heldStreams(ctx context.Context, streams []string) (map[string]bool, error) {
	cur, err := s.o.holds.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: streams}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var hs []struct {
		Stream string `bson:"_id"`
	}
	if err := cur.All(ctx, &hs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	held := make(map[string]bool, len(hs))
	for _, h := range hs {
		held[h.Stream] = true
	}
	return held, nil
}

// markedHeads lowers the heads of the streams that have appends marked held before those read.
func (s *session) markedHeads(ctx context.Context, streams []string, heads map[string]int64) error {
	cur, err := s.o.appends.Find(ctx,
		bson.D{{Key: "held", Value: true}, {Key: "stream", Value: bson.D{{Key: "$in", Value: streams}}}, {Key: "ob", Value: true}},
		options.Find().SetProjection(bson.D{{Key: "stream", Value: 1}, {Key: "fv", Value: 1}}))
	if err != nil {
		return wrapCtx(ctx, err)
	}
	var marked []appendDoc
	if err := cur.All(ctx, &marked); err != nil {
		return wrapCtx(ctx, err)
	}
	for _, m := range marked {
		if h, ok := heads[m.Stream]; ok && m.FirstVersion < h {
			heads[m.Stream] = m.FirstVersion
		}
	}
	return nil
}

// holdDoc is a held stream: its _id is the stream id, so a stream has one hold at most.
type holdDoc struct {
	Stream   string `bson:"_id"`
	Category string `bson:"cat"`
	First    int64  `bson:"fv"`
	Last     int64  `bson:"lv"`
	Reason   string `bson:"reason"`
	At       int64  `bson:"at"` // Unix microseconds
}

// deadDoc records on an append that an operator skipped it: why it was held, who skipped it
// and why.
type deadDoc struct {
	Reason string `bson:"reason"`
	By     string `bson:"by"`
	Why    string `bson:"why"`
	At     int64  `bson:"at"`
}

// Settle takes the published appends out of the outbox (their events stay in the store and in
// its statistics), records the holds, and marks held the appends kept behind a hold. It
// settles nothing once the session's lease is lost (ErrLeaseLost).
//
// Without a transaction its writes are separate, each idempotent: a Settle cut short is done
// again by the next read and settle of the same appends (at least once). An append is marked
// held only while its stream's hold exists: a release, which deletes the hold before it
// unmarks the stream's appends, may run between the check and the mark, so the holds are
// looked at again after it and the marks of a hold that went meanwhile are undone.
func (s *session) Settle(ctx context.Context, settled []outbox.Settlement) error {
	if len(settled) == 0 {
		return nil
	}
	if err := s.fence(); err != nil {
		return err
	}
	var published []int64
	var holds []any
	kept := map[string][]int64{}
	var keptStreams []string
	for _, st := range settled {
		a, err := s.locate(ctx, st.StreamID, st.FirstVersion)
		if err != nil {
			return fmt.Errorf("settle %d outbox appends: %w", len(settled), err)
		}
		if st.Published() {
			published = append(published, a.position)
			continue
		}
		if st.Hold != "" {
			holds = append(holds, holdDoc{Stream: st.StreamID, Category: events.Category(st.StreamID), First: st.FirstVersion, Last: a.last, Reason: st.Hold, At: time.Now().UnixMicro()})
		}
		if _, ok := kept[st.StreamID]; !ok {
			keptStreams = append(keptStreams, st.StreamID)
		}
		kept[st.StreamID] = append(kept[st.StreamID], a.position)
	}
	if len(published) > 0 {
		_, err := s.o.appends.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: published}}}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "ob", Value: ""}, {Key: "held", Value: ""}}}})
		if err != nil {
			return fmt.Errorf("settle %d outbox appends: %w", len(settled), wrapCtx(ctx, err))
		}
	}
	if len(keptStreams) == 0 {
		return nil
	}
	for _, h := range holds {
		// A stream held already keeps its hold, as PostgreSQL's "on conflict do nothing".
		if _, err := s.o.holds.InsertOne(ctx, h); err != nil && !isDuplicate(err) {
			return fmt.Errorf("settle: hold %s: %w", h.(holdDoc).Stream, wrapCtx(ctx, err))
		}
	}
	if err := s.markHeld(ctx, keptStreams, kept); err != nil {
		return fmt.Errorf("settle %d outbox appends (%d streams held): %w", len(settled), len(keptStreams), err)
	}
	return nil
}

// locate returns where the append read by the last Pending lies.
func (s *session) locate(ctx context.Context, streamID string, first int64) (readAppend, error) {
	if a, ok := s.read[appendKey{streamID, first}]; ok {
		return a, nil
	}
	var d appendDoc
	err := s.o.appends.FindOne(ctx, bson.D{{Key: "stream", Value: streamID}, {Key: "fv", Value: first}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "lv", Value: 1}})).Decode(&d)
	if err != nil {
		return readAppend{}, fmt.Errorf("append %s@%d: %w", streamID, first, wrapCtx(ctx, err))
	}
	return readAppend{position: d.First, last: d.LastVersion}, nil
}

// markHeld marks held the kept appends of the streams whose hold exists, and unmarks them
// again for the streams whose hold was released meanwhile.
func (s *session) markHeld(ctx context.Context, streams []string, kept map[string][]int64) error {
	held, err := s.heldStreams(ctx, streams)
	if err != nil {
		return err
	}
	var ids []int64
	var marked []string
	for _, st := range streams {
		if held[st] {
			ids = append(ids, kept[st]...)
			marked = append(marked, st)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.o.appends.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "ob", Value: true}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "held", Value: true}}}}); err != nil {
		return wrapCtx(ctx, err)
	}
	still, err := s.heldStreams(ctx, marked)
	if err != nil {
		return err
	}
	var gone []string
	for _, st := range marked {
		if !still[st] {
			gone = append(gone, st)
		}
	}
	if len(gone) > 0 {
		return unhold(ctx, s.o, gone)
	}
	return nil
}

// unhold returns the appends of the streams marked held to the flow.
func unhold(ctx context.Context, o *Outbox, streams []string) error {
	_, err := o.appends.UpdateMany(ctx, bson.D{{Key: "held", Value: true}, {Key: "stream", Value: bson.D{{Key: "$in", Value: streams}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "held", Value: ""}}}})
	return wrapCtx(ctx, err)
}

// Backlog measures what the outbox still holds. OldestTransaction is always 0: the store has
// no transactions.
func (s *session) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var b outbox.Backlog
	var err error
	if b.Appends, err = s.o.appends.CountDocuments(ctx, bson.D{{Key: "ob", Value: true}}); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", wrapCtx(ctx, err))
	}
	if b.HeldAppends, err = s.o.appends.CountDocuments(ctx, bson.D{{Key: "held", Value: true}, {Key: "ob", Value: true}}); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", wrapCtx(ctx, err))
	}
	if b.HeldStreams, err = s.o.holds.CountDocuments(ctx, bson.D{}); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", wrapCtx(ctx, err))
	}
	var oldest appendDoc
	err = s.o.appends.FindOne(ctx, unpublished,
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "at", Value: 1}})).Decode(&oldest)
	switch {
	case err == nil:
		b.OldestAppend = max(time.Since(micro(oldest.At)), 0)
	case !isNoDocuments(err):
		return b, fmt.Errorf("outbox backlog: %w", wrapCtx(ctx, err))
	}
	return b, nil
}

// Reconcile returns to the flow the appends marked held whose stream has no hold any more.
func (s *session) Reconcile(ctx context.Context) (int64, error) {
	cur, err := s.o.appends.Find(ctx, bson.D{{Key: "held", Value: true}, {Key: "ob", Value: true}},
		options.Find().SetProjection(bson.D{{Key: "stream", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", wrapCtx(ctx, err))
	}
	var marked []appendDoc
	if err := cur.All(ctx, &marked); err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", wrapCtx(ctx, err))
	}
	if len(marked) == 0 {
		return 0, nil
	}
	var streams []string
	for _, m := range marked {
		if !slices.Contains(streams, m.Stream) {
			streams = append(streams, m.Stream)
		}
	}
	held, err := s.heldStreams(ctx, streams)
	if err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", err)
	}
	var orphans []string
	for _, st := range streams {
		if !held[st] {
			orphans = append(orphans, st)
		}
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	res, err := s.o.appends.UpdateMany(ctx, bson.D{{Key: "held", Value: true}, {Key: "stream", Value: bson.D{{Key: "$in", Value: orphans}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "held", Value: ""}}}})
	if err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", wrapCtx(ctx, err))
	}
	return res.ModifiedCount, nil
}

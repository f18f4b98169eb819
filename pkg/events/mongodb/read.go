package mongodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/pkg/events"
)

// envelopes unpacks the events of an append document.
func (d *appendDoc) envelopes() ([]events.Envelope, error) {
	out := make([]events.Envelope, len(d.Events))
	for i, e := range d.Events {
		id, err := uuid.Parse(e.ID)
		if err != nil {
			return nil, fmt.Errorf("event %d of %s@%d: id: %w", i, d.Stream, d.FirstVersion, err)
		}
		meta := map[string]string{}
		if err := json.Unmarshal([]byte(e.Meta), &meta); err != nil {
			return nil, fmt.Errorf("event %d of %s@%d: metadata: %w", i, d.Stream, d.FirstVersion, err)
		}
		out[i] = events.Envelope{
			EventID: id, StreamID: d.Stream, Category: events.Category(d.Stream),
			Version: d.FirstVersion + int64(i), GlobalPosition: d.First + int64(i),
			Type: e.Type, SchemaVersion: e.SchemaVersion, Data: json.RawMessage(e.Data), Metadata: meta,
			CorrelationID: d.Correlation, CausationID: d.Causation, RecordedAt: micro(d.At),
		}
	}
	return out, nil
}

// find runs a query on the appends and decodes every document.
func (s *Store) find(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]appendDoc, error) {
	cur, err := s.appends.Find(ctx, filter, opts)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []appendDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	return docs, nil
}

// ReadStream returns up to limit events of the stream with from <= version <= to (to < 0: to
// the end), in version order. A stream that does not exist reads as empty.
func (s *Store) ReadStream(ctx context.Context, streamID string, from, to int64, limit int) ([]events.Envelope, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: read %s: limit must be positive", events.ErrInvalid, streamID)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	filter := bson.D{{Key: "stream", Value: streamID}, {Key: "lv", Value: bson.D{{Key: "$gte", Value: from}}}}
	if to >= 0 {
		filter = append(filter, bson.E{Key: "fv", Value: bson.D{{Key: "$lte", Value: to}}})
	}
	// Every document holds at least one event: limit documents hold enough.
	docs, err := s.find(ctx, filter, options.Find().SetSort(bson.D{{Key: "fv", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	var out []events.Envelope
	for i := range docs {
		envs, err := docs[i].envelopes()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", streamID, err)
		}
		for _, e := range envs {
			if e.Version >= from && (to < 0 || e.Version <= to) && len(out) < limit {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// readAllPage is how many documents ReadAll asks for at a time.
const readAllPage = 256

// ReadAll returns a page of every stream's events in global-position order, filtered as q
// says. Positions have no holes (see the package doc); a missing one is an error, never
// skipped.
func (s *Store) ReadAll(ctx context.Context, q events.AllQuery) ([]events.Envelope, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: read all: limit must be positive", events.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	var out []events.Envelope
	next := max(q.After, 0) + 1 // the next position to read
	for len(out) < q.Limit {
		docs, err := s.find(ctx, bson.D{{Key: "last", Value: bson.D{{Key: "$gte", Value: next}}}},
			options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(readAllPage))
		if err != nil {
			return nil, fmt.Errorf("read all: %w", err)
		}
		if len(docs) == 0 {
			return out, nil
		}
		for i := range docs {
			d := &docs[i]
			if d.First > next {
				return nil, fmt.Errorf("read all: positions %d to %d are missing", next, d.First-1)
			}
			envs, err := d.envelopes()
			if err != nil {
				return nil, fmt.Errorf("read all: %w", err)
			}
			for _, e := range envs {
				if e.GlobalPosition < next || !matches(q, e) {
					continue
				}
				out = append(out, e)
				if len(out) == q.Limit {
					return out, nil
				}
			}
			next = d.Last + 1
		}
	}
	return out, nil
}

// matches reports whether e passes q's filters of time and type.
func matches(q events.AllQuery, e events.Envelope) bool {
	return (q.Since.IsZero() || !e.RecordedAt.Before(q.Since)) &&
		(q.Until.IsZero() || e.RecordedAt.Before(q.Until)) &&
		(len(q.Types) == 0 || slices.Contains(q.Types, e.Type))
}

// StreamInfo returns the stream's metadata, or ErrNotFound when it has no events.
func (s *Store) StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error) {
	info := events.StreamInfo{StreamID: streamID, Category: events.Category(streamID)}
	if err := ctx.Err(); err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	var first, last appendDoc
	proj := options.FindOne().SetProjection(bson.D{{Key: "lv", Value: 1}, {Key: "at", Value: 1}})
	err := s.appends.FindOne(ctx, bson.D{{Key: "stream", Value: streamID}}, proj.SetSort(bson.D{{Key: "fv", Value: -1}})).Decode(&last)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return info, fmt.Errorf("stream %s: %w", streamID, events.ErrNotFound)
	}
	if err == nil {
		err = s.appends.FindOne(ctx, bson.D{{Key: "stream", Value: streamID}, {Key: "fv", Value: 0}}, options.FindOne()).Decode(&first)
	}
	if err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, wrapCtx(ctx, err))
	}
	info.Version, info.EventCount = last.LastVersion, last.LastVersion+1
	info.CreatedAt, info.UpdatedAt = micro(first.At), micro(last.At)
	return info, nil
}

// Stats counts the events and streams and returns the recent most recent events, newest
// first. It aggregates over every append (see the package doc).
func (s *Store) Stats(ctx context.Context, recent int) (events.Stats, error) {
	st := events.Stats{EventsByType: map[string]int64{}, RecentEvents: []events.Envelope{}}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	cur, err := s.appends.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$unwind", Value: "$events"}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$events.type"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return st, fmt.Errorf("stats: %w", wrapCtx(ctx, err))
	}
	var byType []struct {
		Type string `bson:"_id"`
		N    int64  `bson:"n"`
	}
	if err := cur.All(ctx, &byType); err != nil {
		return st, fmt.Errorf("stats: %w", wrapCtx(ctx, err))
	}
	for _, t := range byType {
		st.EventsByType[t.Type] = t.N
		st.TotalEvents += t.N
	}
	if st.TotalStreams, err = s.appends.CountDocuments(ctx, bson.D{{Key: "fv", Value: 0}}); err != nil {
		return st, fmt.Errorf("stats: %w", wrapCtx(ctx, err))
	}
	if recent <= 0 {
		return st, nil
	}
	docs, err := s.find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(recent)))
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	for i := range docs {
		envs, err := docs[i].envelopes()
		if err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		for j := len(envs) - 1; j >= 0 && len(st.RecentEvents) < recent; j-- {
			st.RecentEvents = append(st.RecentEvents, envs[j])
		}
	}
	return st, nil
}

// VersionAt is the version of the stream's last event recorded at or before t; -1 if none.
func (s *Store) VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	// Recording times are kept to the microsecond: a time between two is the earlier one.
	us := t.Truncate(time.Microsecond).UnixMicro()
	var d appendDoc
	err := s.appends.FindOne(ctx, bson.D{{Key: "stream", Value: streamID}, {Key: "at", Value: bson.D{{Key: "$lte", Value: us}}}},
		options.FindOne().SetSort(bson.D{{Key: "fv", Value: -1}}).SetProjection(bson.D{{Key: "lv", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), wrapCtx(ctx, err))
	}
	return d.LastVersion, nil
}

// Head is the last position of the last append: an append's document takes the position after
// the last one visible, so no position becomes visible before every position below it.
func (s *Store) Head(ctx context.Context) (int64, error) {
	n, err := s.lastPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return n, nil
}

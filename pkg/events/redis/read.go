package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/pkg/events"
)

// load returns the events at the given global positions, in their order, in one round trip.
func (s *Store) load(ctx context.Context, positions []int64) ([]events.Envelope, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	fields := make([]string, len(positions))
	for i, p := range positions {
		fields[i] = strconv.FormatInt(p, 10)
	}
	vals, err := s.rdb.HMGet(ctx, s.keyEvents(), fields...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]events.Envelope, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("event at %d: missing", positions[i])
		}
		if out[i], err = decode(positions[i], str); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parsePositions reads the members of a sorted set of positions.
func parsePositions(members []string) ([]int64, error) {
	out := make([]int64, len(members))
	for i, m := range members {
		p, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("position %q: %w", m, err)
		}
		out[i] = p
	}
	return out, nil
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
	from = max(from, 0)
	stop := from + int64(limit) - 1
	if to >= 0 {
		stop = min(stop, to)
	}
	if stop < from {
		return nil, nil
	}
	// A stream's versions are the ranks of its positions: version v is rank v.
	members, err := s.rdb.ZRange(ctx, s.keyStream(streamID), from, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	positions, err := parsePositions(members)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	out, err := s.load(ctx, positions)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamID, err)
	}
	return out, nil
}

// ReadAll returns a page of every stream's events in global-position order, filtered as q
// says. Global positions have no gaps, and recording times increase with them, so the page's
// range of positions comes from the position counter and the appends' times alone; a filter
// on types reads each type's index of positions.
func (s *Store) ReadAll(ctx context.Context, q events.AllQuery) ([]events.Envelope, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: read all: limit must be positive", events.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	lo, hi, err := s.span(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	if hi < lo {
		return nil, nil
	}
	var positions []int64
	if len(q.Types) == 0 {
		for p := lo; p <= hi && len(positions) < q.Limit; p++ {
			positions = append(positions, p)
		}
	} else if positions, err = s.typed(ctx, q.Types, lo, hi, q.Limit); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	out, err := s.load(ctx, positions)
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	return out, nil
}

// span is the range of global positions lo..hi that q's After, Since and Until allow.
func (s *Store) span(ctx context.Context, q events.AllQuery) (lo, hi int64, err error) {
	lo = max(q.After, 0) + 1
	if hi, err = s.lastPosition(ctx); err != nil {
		return 0, 0, err
	}
	if !q.Since.IsZero() {
		// Events recorded before Since end at the last position of the last append before it.
		p, err := s.lastBefore(ctx, "("+strconv.FormatInt(ceilMicros(q.Since), 10))
		if err != nil {
			return 0, 0, err
		}
		lo = max(lo, p+1)
	}
	if !q.Until.IsZero() {
		p, err := s.lastBefore(ctx, "("+strconv.FormatInt(ceilMicros(q.Until), 10))
		if err != nil {
			return 0, 0, err
		}
		hi = min(hi, p)
	}
	return lo, hi, nil
}

// typed returns up to limit positions in lo..hi of events of the given types, in order.
func (s *Store) typed(ctx context.Context, types []string, lo, hi int64, limit int) ([]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.StringSliceCmd, 0, len(types))
	for _, t := range slices.Compact(slices.Sorted(slices.Values(types))) {
		cmds = append(cmds, pipe.ZRangeByScore(ctx, s.keyType(t), &goredis.ZRangeBy{
			Min: strconv.FormatInt(lo, 10), Max: strconv.FormatInt(hi, 10), Count: int64(limit),
		}))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var out []int64
	for _, c := range cmds {
		ps, err := parsePositions(c.Val())
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	slices.SortFunc(out, cmp.Compare)
	return out[:min(len(out), limit)], nil
}

// lastPosition is the global position of the last event; 0 when there is none.
func (s *Store) lastPosition(ctx context.Context) (int64, error) {
	n, err := s.rdb.Get(ctx, s.keyPosition()).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return n, err
}

// lastBefore is the last global position of the last append recorded at or before max (a
// score bound in µs, "(" for before); 0 when there is none.
func (s *Store) lastBefore(ctx context.Context, bound string) (int64, error) {
	members, err := s.rdb.ZRevRangeByScore(ctx, s.keyTimes(), &goredis.ZRangeBy{Max: bound, Min: "-inf", Count: 1}).Result()
	if err != nil || len(members) == 0 {
		return 0, err
	}
	return strconv.ParseInt(members[0], 10, 64)
}

// floorMicros and ceilMicros are t in whole microseconds since the Unix epoch, rounded down
// and up: recording times are whole microseconds.
func floorMicros(t time.Time) int64 { return t.UnixMicro() }

func ceilMicros(t time.Time) int64 {
	if t.Nanosecond()%1000 != 0 {
		return t.UnixMicro() + 1
	}
	return t.UnixMicro()
}

// StreamInfo returns the stream's metadata, or ErrNotFound when it has no events.
func (s *Store) StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error) {
	info := events.StreamInfo{StreamID: streamID}
	if err := ctx.Err(); err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	pipe := s.rdb.TxPipeline()
	count := pipe.ZCard(ctx, s.keyStream(streamID))
	ends := pipe.ZRange(ctx, s.keyStream(streamID), 0, 0)
	last := pipe.ZRange(ctx, s.keyStream(streamID), -1, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	if count.Val() == 0 {
		return info, fmt.Errorf("stream %s: %w", streamID, events.ErrNotFound)
	}
	positions, err := parsePositions(append(ends.Val(), last.Val()...))
	if err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	envs, err := s.load(ctx, positions)
	if err != nil {
		return info, fmt.Errorf("stream %s: %w", streamID, err)
	}
	info.Category = events.Category(streamID)
	info.EventCount = count.Val()
	info.Version = envs[1].Version
	info.CreatedAt, info.UpdatedAt = envs[0].RecordedAt, envs[1].RecordedAt
	return info, nil
}

// Stats reads the store's counters (never a scan) and returns the recent most recent events,
// newest first.
func (s *Store) Stats(ctx context.Context, recent int) (events.Stats, error) {
	st := events.Stats{EventsByType: map[string]int64{}, RecentEvents: []events.Envelope{}}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	pipe := s.rdb.TxPipeline()
	total := pipe.Get(ctx, s.keyPosition())
	streams := pipe.Get(ctx, s.keyStreams())
	types := pipe.HGetAll(ctx, s.keyTypes())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return st, fmt.Errorf("stats: %w", err)
	}
	var err error
	if st.TotalEvents, err = counter(total); err != nil {
		return st, fmt.Errorf("stats: events: %w", err)
	}
	if st.TotalStreams, err = counter(streams); err != nil {
		return st, fmt.Errorf("stats: streams: %w", err)
	}
	for t, v := range types.Val() {
		if st.EventsByType[t], err = strconv.ParseInt(v, 10, 64); err != nil {
			return st, fmt.Errorf("stats: type %s: %w", t, err)
		}
	}
	var positions []int64
	for p := st.TotalEvents; p >= 1 && len(positions) < recent; p-- {
		positions = append(positions, p)
	}
	envs, err := s.load(ctx, positions)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.RecentEvents = append(st.RecentEvents, envs...)
	return st, nil
}

// counter reads a counter that may not exist yet.
func counter(c *goredis.StringCmd) (int64, error) {
	n, err := c.Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return n, err
}

// VersionAt is the version of the stream's last event recorded at or before t; -1 if none.
func (s *Store) VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	last, err := s.lastBefore(ctx, strconv.FormatInt(floorMicros(t), 10))
	if err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	if last == 0 {
		return -1, nil
	}
	// The stream's events up to that position are its versions 0..n-1.
	n, err := s.rdb.ZCount(ctx, s.keyStream(streamID), "-inf", strconv.FormatInt(last, 10)).Result()
	if err != nil {
		return -1, fmt.Errorf("version of %s at %s: %w", streamID, t.Format(time.RFC3339Nano), err)
	}
	return n - 1, nil
}

// Head is the last global position handed out: an append is one script, which Redis runs
// whole before any other command, so every position at or below the counter is committed.
func (s *Store) Head(ctx context.Context) (int64, error) {
	n, err := s.lastPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return n, nil
}

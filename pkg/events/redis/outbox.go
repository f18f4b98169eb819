package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
)

// The outbox's keys, written by the append's script and by the scripts in scripts.go:
//   - outbox: a sorted set of the appends to publish, each an entry "firstPosition:
//     lastPosition:stream" scored by its first position, so read oldest first;
//   - outbox-held: the same for the appends of held streams, which reads pass over;
//   - outbox-stream:<id>: every append of the stream in the outbox, held or not, scored by its
//     first version: its first entry is the stream's Head, and a settlement finds its entry
//     by version there;
//   - outbox-holds: a hash of the holds by stream, "firstVersion lastVersion µs reason";
//   - outbox-held-streams: the streams with appends in outbox-held, for Reconcile;
//   - outbox-dead: the appends an operator skipped, by "stream@firstVersion";
//   - outbox-lease:<key>: the publishing relay's token.

// ErrLeaseLost: the session's lease on the outbox expired or was taken by another relay; it
// may no longer settle anything.
var ErrLeaseLost = errors.New("the outbox lease is lost")

// Outbox is the publishing side of the store's outbox: the lease that elects one publishing
// relay, the wake-ups from appends, and, through the Session it hands out, every read and
// settlement of the outbox. It implements relay.Outbox; its operator methods match those of
// the PostgreSQL store's Outbox.
type Outbox struct {
	s *Store
}

// NewOutbox returns the Outbox of the store that New(rdb, opts) returns.
func NewOutbox(rdb goredis.UniversalClient, opts Options) *Outbox { return New(rdb, opts).Outbox() }

// Outbox returns the store's Outbox.
func (s *Store) Outbox() *Outbox { return &Outbox{s: s} }

// Lead takes the lease of key (SET NX PX with a token of its own), trying every poll until it
// does or ctx ends, and returns the session that holds it. The session renews the lease every
// third of Options.LeaseTTL until it is closed; it is lost when a renewal finds the token
// gone, or when no renewal succeeded for a whole LeaseTTL. Every settlement checks the token
// in the same script as its writes, so a relay that lost its lease settles nothing even
// before it notices.
func (o *Outbox) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	token := uuid.NewString()
	lease, ttl := o.s.keyLease(key), o.s.opts.LeaseTTL
	for {
		sent := time.Now()
		got, err := o.s.rdb.SetNX(ctx, lease, token, ttl).Result()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("outbox lease: %w", err)
		}
		if got {
			sess := &session{o: o, lease: lease, token: token, ttl: ttl, done: make(chan struct{})}
			sess.validUntil.Store(sent.Add(ttl).UnixNano())
			renewCtx, stop := context.WithCancel(context.Background())
			sess.stop = stop
			go sess.renew(renewCtx)
			return sess, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Listen calls wake on every message that appends publish on the store's channel, from this
// process or any other, until ctx ends or the subscription breaks, and returns why it
// stopped. It calls wake once subscribed, too: appends made while nobody listened publish
// to no one, and the relay's poll covers any message lost in between.
func (o *Outbox) Listen(ctx context.Context, wake func()) error {
	sub := o.s.rdb.Subscribe(ctx, o.s.channelAppended())
	var once sync.Once
	closeSub := func() { once.Do(func() { _ = sub.Close() }) }
	defer closeSub()
	stop := context.AfterFunc(ctx, closeSub) // Receive does not return on ctx alone
	defer stop()
	if _, err := sub.Receive(ctx); err != nil {
		return fmt.Errorf("outbox listen: %w", cmp.Or(ctx.Err(), err))
	}
	wake()
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			return fmt.Errorf("outbox listen: %w", cmp.Or(ctx.Err(), err))
		}
		if _, ok := msg.(*goredis.Message); ok {
			wake()
		}
	}
}

// session holds the lease of the publishing relay.
type session struct {
	o            *Outbox
	lease, token string
	ttl          time.Duration
	validUntil   atomic.Int64 // UnixNano: the lease surely lasts until then
	lost         atomic.Bool
	stop         context.CancelFunc
	done         chan struct{}
	closeOnce    sync.Once
}

var _ outbox.Session = (*session)(nil)

// renew extends the lease every third of its length until ctx ends or the lease is gone.
func (s *session) renew(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		held, err := renewScript.Run(ctx, s.o.s.rdb, []string{s.lease}, s.token, s.ttl.Milliseconds()).Int()
		switch {
		case err != nil:
			continue // Lost turns true once validUntil passes
		case held == 0:
			s.lost.Store(true)
			return
		}
		s.validUntil.Store(sent.Add(s.ttl).UnixNano())
	}
}

// Lost reports whether the lease is gone: taken by another, expired, or not renewed for its
// whole length (the server unreachable).
func (s *session) Lost() bool {
	return s.lost.Load() || time.Now().UnixNano() >= s.validUntil.Load()
}

// Close stops renewing the lease and releases it, if it still holds it.
func (s *session) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = releaseLeaseScript.Run(ctx, s.o.s.rdb, []string{s.lease}, s.token).Err()
		s.lost.Store(true)
	})
}

// entry is an append as the outbox keeps it: "firstPosition:lastPosition:stream".
type entry struct {
	first, last int64
	stream      string
}

func parseEntry(member string) (entry, error) {
	fp, rest, ok1 := strings.Cut(member, ":")
	lp, stream, ok2 := strings.Cut(rest, ":")
	e := entry{stream: stream}
	var err1, err2 error
	e.first, err1 = strconv.ParseInt(fp, 10, 64)
	e.last, err2 = strconv.ParseInt(lp, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || e.last < e.first {
		return e, fmt.Errorf("outbox entry %q: %w", member, errCorrupt)
	}
	return e, nil
}

// Pending reads the oldest appends of the outbox that are not held, those that start within
// the first maxEvents events and fit, with those before them, in maxBytes of data and
// metadata (the first whatever its size), with their events, their streams' Heads and
// whether their streams are held, sorted by stream and version. It takes two round trips:
// the entries, then their events, heads and holds together. Appends are entered in the
// outbox in the script that writes them, in position order, so the read skips none; one
// appended meanwhile is read by a later call.
func (s *session) Pending(ctx context.Context, maxEvents int, maxBytes int64) ([]outbox.Append, error) {
	if s.Lost() {
		return nil, fmt.Errorf("read outbox: %w", ErrLeaseLost)
	}
	st := s.o.s
	members, err := st.rdb.ZRange(ctx, st.keyOutbox(), 0, int64(max(maxEvents, 1))-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	var entries []entry
	var positions []int64
	n := 0
	for _, m := range members {
		if n >= maxEvents && len(entries) > 0 {
			break
		}
		e, err := parseEntry(m)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		entries = append(entries, e)
		for p := e.first; p <= e.last; p++ {
			positions = append(positions, p)
		}
		n += int(e.last - e.first + 1)
	}
	if len(entries) == 0 {
		return nil, nil
	}

	fields := make([]string, len(positions))
	for i, p := range positions {
		fields[i] = strconv.FormatInt(p, 10)
	}
	var streams []string
	for _, e := range entries {
		if !slices.Contains(streams, e.stream) {
			streams = append(streams, e.stream)
		}
	}
	pipe := st.rdb.Pipeline()
	evCmd := pipe.HMGet(ctx, st.keyEvents(), fields...)
	heads := make([]*goredis.ZSliceCmd, len(streams))
	for i, id := range streams {
		heads[i] = pipe.ZRangeWithScores(ctx, st.keyOutboxStream(id), 0, 0)
	}
	holdCmd := pipe.HMGet(ctx, st.keyHolds(), streams...)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	head, held := map[string]int64{}, map[string]bool{}
	for i, id := range streams {
		if z := heads[i].Val(); len(z) > 0 {
			head[id] = int64(z[0].Score)
		}
		held[id] = holdCmd.Val()[i] != nil
	}

	out := make([]outbox.Append, 0, len(entries))
	var bytes int64
	vals := evCmd.Val()
	for _, e := range entries {
		a := outbox.Append{StreamID: e.stream, Category: events.Category(e.stream), Head: head[e.stream], Held: held[e.stream]}
		for p := e.first; p <= e.last; p++ {
			raw, ok := vals[0].(string)
			vals = vals[1:]
			if !ok {
				return nil, fmt.Errorf("read outbox: event at %d: missing", p)
			}
			env, err := decode(p, raw)
			if err != nil {
				return nil, fmt.Errorf("read outbox: %w", err)
			}
			a.Bytes += envelopeBytes(env)
			a.Events = append(a.Events, env)
		}
		if bytes += a.Bytes; bytes > maxBytes && len(out) > 0 {
			break
		}
		a.FirstVersion, a.LastVersion = a.Events[0].Version, a.Events[len(a.Events)-1].Version
		a.CreatedAt = a.Events[0].RecordedAt
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y outbox.Append) int {
		return cmp.Or(strings.Compare(x.StreamID, y.StreamID), cmp.Compare(x.FirstVersion, y.FirstVersion))
	})
	return out, nil
}

// envelopeBytes is the size of an event's data and metadata as the read's byte budget counts
// them.
func envelopeBytes(e events.Envelope) int64 {
	n := len(e.Data) + 2
	for k, v := range e.Metadata {
		n += len(k) + len(v) + 6
	}
	return int64(n)
}

// Settle settles a round in one script that first checks the session's token: the published
// appends leave the outbox, the held ones record their streams' holds, and they and those
// behind them are moved among the held appends while their hold exists. A session whose lease
// is gone settles nothing and returns ErrLeaseLost.
func (s *session) Settle(ctx context.Context, settled []outbox.Settlement) error {
	if len(settled) == 0 {
		return nil
	}
	if s.Lost() {
		return fmt.Errorf("settle %d outbox entries: %w", len(settled), ErrLeaseLost)
	}
	st := s.o.s
	keys := []string{s.lease, st.keyOutbox(), st.keyOutboxHeld(), st.keyHolds(), st.keyHeldStreams()}
	args := []any{s.token}
	for _, x := range settled {
		kind := "p"
		switch {
		case x.Hold != "":
			kind = "h"
		case x.Behind:
			kind = "b"
		}
		keys = append(keys, st.keyOutboxStream(x.StreamID))
		args = append(args, kind, x.FirstVersion, x.Hold)
	}
	reply, err := settleScript.Run(ctx, st.rdb, keys, args...).Text()
	if err != nil {
		return fmt.Errorf("settle %d outbox entries: %w", len(settled), err)
	}
	if reply == "lost" {
		s.lost.Store(true)
		return fmt.Errorf("settle %d outbox entries: %w", len(settled), ErrLeaseLost)
	}
	return nil
}

// Backlog counts the outbox's appends, held ones and holds, and measures the age of the
// oldest append not held by the server's clock. Redis has no transactions that stay open, so
// OldestTransaction is always 0.
func (s *session) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var b outbox.Backlog
	st := s.o.s
	pipe := st.rdb.Pipeline()
	flowing := pipe.ZCard(ctx, st.keyOutbox())
	heldN := pipe.ZCard(ctx, st.keyOutboxHeld())
	holds := pipe.HLen(ctx, st.keyHolds())
	oldest := pipe.ZRange(ctx, st.keyOutbox(), 0, 0)
	now := pipe.Time(ctx)
	if _, err := pipe.Exec(ctx); err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	b.Appends = flowing.Val() + heldN.Val()
	b.HeldAppends, b.HeldStreams = heldN.Val(), holds.Val()
	if len(oldest.Val()) == 0 {
		return b, nil
	}
	e, err := parseEntry(oldest.Val()[0])
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	raw, err := st.rdb.HGet(ctx, st.keyEvents(), strconv.FormatInt(e.first, 10)).Result()
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	env, err := decode(e.first, raw)
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	b.OldestAppend = max(now.Val().Sub(env.RecordedAt), 0)
	return b, nil
}

// Reconcile returns to the flow the held appends of streams whose hold is gone (deleted by
// hand rather than released), a stream at a time, and reports how many it returned.
func (s *session) Reconcile(ctx context.Context) (int64, error) {
	st := s.o.s
	streams, err := st.rdb.SMembers(ctx, st.keyHeldStreams()).Result()
	if err != nil || len(streams) == 0 {
		if err != nil {
			return 0, fmt.Errorf("outbox reconcile: %w", err)
		}
		return 0, nil
	}
	holds, err := st.rdb.HMGet(ctx, st.keyHolds(), streams...).Result()
	if err != nil {
		return 0, fmt.Errorf("outbox reconcile: %w", err)
	}
	var total int64
	for i, id := range streams {
		if holds[i] != nil {
			continue
		}
		_, _, moved, err := st.release(ctx, id, "reconcile")
		if err != nil {
			return total, fmt.Errorf("outbox reconcile: %w", err)
		}
		total += moved
	}
	return total, nil
}

// release runs releaseScript on a stream: the hold it released ("" when none), the stream's
// appends in the outbox, and how many it returned to the flow.
func (s *Store) release(ctx context.Context, streamID, mode string) (hold string, waiting, moved int64, err error) {
	keys := []string{s.keyOutbox(), s.keyOutboxHeld(), s.keyHolds(), s.keyHeldStreams(), s.keyOutboxStream(streamID)}
	reply, err := releaseScript.Run(ctx, s.rdb, keys, streamID, mode).Slice()
	if err != nil {
		return "", 0, 0, err
	}
	if len(reply) != 3 {
		return "", 0, 0, fmt.Errorf("release %s: unexpected reply %v", streamID, reply)
	}
	hold, _ = reply[0].(string)
	waiting, _ = reply[1].(int64)
	moved, _ = reply[2].(int64)
	return hold, waiting, moved, nil
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/pkg/events"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Prefix names the store inside the Redis database: every key is "{Prefix}:...", so that
	// several stores share a server and, in a Redis Cluster, all keys of one store hash to one
	// slot (the appends' scripts touch many of them at once). Empty means "annals".
	Prefix string
	// MaxEventsPerStream refuses appends that would take a stream past this many events, as
	// the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventsPerStream int
	// MaxEventBytes refuses appends with an event larger than this (events.Event.Size, data
	// and metadata), as the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventBytes int
	// LeaseTTL is how long the publishing relay's lease on the outbox lasts unless renewed
	// (Outbox.Lead); its holder renews it every third of it. It bounds how long the outbox
	// waits for a new publisher after the last one vanished without closing its session.
	// Zero means 5 s.
	LeaseTTL time.Duration
	// OnAppend, when set, is called after each append that succeeded, for example to wake a
	// relay in the same process (relay.Wake) without waiting for the message that the append
	// publishes to relays elsewhere (Outbox.Listen). It must not block.
	OnAppend func()
}

// Store is an event store in Redis. It is safe for concurrent use; the zero value is not
// usable, call New.
type Store struct {
	rdb  goredis.UniversalClient
	opts Options
	tag  string // "{prefix}:", the start of every key
}

var _ events.Store = (*Store)(nil)

// New returns a Store on the client's database. The Store does not own the client: closing it
// is the caller's.
func New(rdb goredis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "annals"
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 5 * time.Second
	}
	return &Store{rdb: rdb, opts: opts, tag: "{" + opts.Prefix + "}:"}
}

// The keys of the store. Every one starts with the hash tag, so all live in one cluster slot.
func (s *Store) keyPosition() string         { return s.tag + "position" }
func (s *Store) keyStream(id string) string  { return s.tag + "stream:" + id }
func (s *Store) keyEvents() string           { return s.tag + "events" }
func (s *Store) keyIDs() string              { return s.tag + "ids" }
func (s *Store) keyTypes() string            { return s.tag + "types" }
func (s *Store) keyStreams() string          { return s.tag + "streams" }
func (s *Store) keyTimes() string            { return s.tag + "times" }
func (s *Store) keyLastTime() string         { return s.tag + "last-time" }
func (s *Store) keyType(typ string) string   { return s.tag + "type:" + typ }
func (s *Store) keyIdempotency() string      { return s.tag + "idempotency" }
func (s *Store) keyIdempotencyTimes() string { return s.tag + "idempotency-times" }
func (s *Store) keyOutbox() string           { return s.tag + "outbox" }
func (s *Store) keyOutboxHeld() string       { return s.tag + "outbox-held" }
func (s *Store) keyOutboxStream(id string) string {
	return s.tag + "outbox-stream:" + id
}
func (s *Store) keyHolds() string       { return s.tag + "outbox-holds" }
func (s *Store) keyHeldStreams() string { return s.tag + "outbox-held-streams" }
func (s *Store) keyDead() string        { return s.tag + "outbox-dead" }
func (s *Store) keyLease(key int64) string {
	return s.tag + "outbox-lease:" + strconv.FormatInt(key, 10)
}
func (s *Store) channelAppended() string       { return s.tag + "appended" }
func (s *Store) keySnapshots(id string) string { return s.tag + "snapshots:" + id }
func (s *Store) keySnapshotVersions(id string, ssv int) string {
	return s.tag + "snapshot-versions:" + strconv.Itoa(ssv) + ":" + id
}

// payload is the part of a stored event that the append's caller decides; the script puts the
// version and the recording time in front of it. Data is a string, not a json.RawMessage, so
// that it is kept byte for byte (encoding/json compacts raw messages).
type payload struct {
	ID            uuid.UUID `json:"id"`
	StreamID      string    `json:"stream"`
	Type          string    `json:"type"`
	SchemaVersion int       `json:"schema_version"`
	Data          string    `json:"data"`
	Metadata      string    `json:"metadata"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
}

// Append appends the events to the stream if it is at the expected version: all of them, or
// none and an error.
func (s *Store) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	res := events.AppendResult{StreamID: streamID}
	recs, err := s.prepare(streamID, evs, opts)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("append %s: %w", streamID, err)
	}

	idemKey, idemRecord, err := idempotencyArgs(streamID, recs, opts.Idempotency)
	if err != nil {
		return res, err
	}
	keys := []string{
		s.keyPosition(), s.keyStream(streamID), s.keyEvents(), s.keyIDs(), s.keyTypes(),
		s.keyStreams(), s.keyTimes(), s.keyLastTime(), s.keyIdempotency(), s.keyIdempotencyTimes(),
		s.keyOutbox(), s.keyOutboxStream(streamID),
	}
	kind, version := "any", int64(0)
	switch v, exact := expected.Version(); {
	case exact:
		kind, version = "exact", v
	case expected.IsNoStream():
		kind = "no_stream"
	case expected.IsStreamExists():
		kind = "stream_exists"
	}
	args := []any{kind, version, s.opts.MaxEventsPerStream, len(recs), idemKey, idemRecord, streamID, s.channelAppended()}
	for _, r := range recs {
		keys = append(keys, s.keyType(r.p.Type))
		args = append(args, r.p.ID.String(), r.p.Type, r.raw)
	}
	reply, err := appendScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return res, fmt.Errorf("append %s: %w", streamID, err)
	}
	if len(reply) < 2 {
		return res, fmt.Errorf("append %s: unexpected reply %v", streamID, reply)
	}
	switch reply[0] {
	case "taken":
		return res, fmt.Errorf("append %s: key %q: %w", streamID, idemKey, events.ErrIdempotencyKeyTaken)
	case "conflict":
		return res, &events.VersionConflictError{StreamID: streamID, Expected: expected, Actual: reply[1].(int64)}
	case "full":
		return res, &events.StreamFullError{StreamID: streamID, Version: reply[1].(int64), Appending: len(recs), Max: s.opts.MaxEventsPerStream}
	case "duplicate":
		return res, fmt.Errorf("%w: append %s: an event with id %v is already recorded", events.ErrInvalid, streamID, reply[1])
	case "ok":
	default:
		return res, fmt.Errorf("append %s: unexpected reply %v", streamID, reply)
	}
	if len(reply) != 4 {
		return res, fmt.Errorf("append %s: unexpected reply %v", streamID, reply)
	}
	actual, first := reply[1].(int64), reply[2].(int64)
	at, err := parseMicros(reply[3].(string))
	if err != nil {
		return res, fmt.Errorf("append %s: %w", streamID, err)
	}
	n := int64(len(recs))
	res.FirstVersion, res.LastVersion = actual+1, actual+n
	res.FirstPosition, res.LastPosition = first, first+n-1
	res.RecordedAt = at
	res.EventIDs = make([]uuid.UUID, len(recs))
	for i, r := range recs {
		res.EventIDs[i] = r.p.ID
	}
	if s.opts.OnAppend != nil {
		s.opts.OnAppend()
	}
	return res, nil
}

// record is an event ready for the script: its payload, and that payload as JSON.
type record struct {
	p   payload
	raw string
}

// prepare checks the append's input as the other stores do (refusing, as they do, text that
// PostgreSQL could not hold, so that the stores take the same events) and encodes the events.
func (s *Store) prepare(streamID string, evs []events.Event, opts events.AppendOptions) ([]record, error) {
	if err := events.CheckAppend(streamID, evs, opts, events.AppendLimits{MaxEventsPerStream: s.opts.MaxEventsPerStream, MaxEventBytes: s.opts.MaxEventBytes}); err != nil {
		return nil, err
	}
	recs := make([]record, len(evs))
	for i, e := range evs {
		id, meta, err := e.Recorded()
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", streamID, err)
		}
		p := payload{
			ID: id, StreamID: streamID, Type: e.Type, SchemaVersion: max(e.SchemaVersion, 1),
			Data: string(e.Data), Metadata: string(meta),
			CorrelationID: opts.CorrelationID, CausationID: opts.CausationID,
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", streamID, err)
		}
		recs[i] = record{p: p, raw: string(raw)}
	}
	return recs, nil
}

// parseMicros reads a recording time: microseconds since the Unix epoch.
func parseMicros(s string) (time.Time, error) {
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("recording time %q: %w", s, err)
	}
	return time.UnixMicro(us).UTC(), nil
}

// decode reads a stored event: "version µs payload".
func decode(pos int64, stored string) (events.Envelope, error) {
	env := events.Envelope{GlobalPosition: pos}
	v, rest, ok1 := strings.Cut(stored, " ")
	ts, raw, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return env, fmt.Errorf("event at %d: %w", pos, errCorrupt)
	}
	var err error
	if env.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
		return env, fmt.Errorf("event at %d: version: %w", pos, err)
	}
	if env.RecordedAt, err = parseMicros(ts); err != nil {
		return env, fmt.Errorf("event at %d: %w", pos, err)
	}
	var p payload
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return env, fmt.Errorf("event at %d: %w", pos, err)
	}
	if err := json.Unmarshal([]byte(p.Metadata), &env.Metadata); err != nil {
		return env, fmt.Errorf("event at %d: metadata: %w", pos, err)
	}
	if env.Metadata == nil {
		env.Metadata = map[string]string{}
	}
	env.EventID, env.StreamID, env.Category = p.ID, p.StreamID, events.Category(p.StreamID)
	env.Type, env.SchemaVersion, env.Data = p.Type, p.SchemaVersion, json.RawMessage(p.Data)
	env.CorrelationID, env.CausationID = p.CorrelationID, p.CausationID
	return env, nil
}

// errCorrupt: a stored value is not in the store's layout.
var errCorrupt = errors.New("stored value is not in the store's layout")

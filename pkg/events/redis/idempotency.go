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

var _ events.IdempotencyStore = (*Store)(nil)

// idempotencyRecord is the part of an idempotency record that the append's caller knows; the
// append's script puts where the append landed in front of it.
type idempotencyRecord struct {
	RequestHash []byte      `json:"hash"`
	Status      int         `json:"status"`
	StreamID    string      `json:"stream"`
	EventIDs    []uuid.UUID `json:"event_ids"`
}

// idempotencyArgs are the append script's arguments for key: the key and the JSON of its
// record, or two empty strings when the append carries none.
func idempotencyArgs(streamID string, recs []record, key *events.IdempotencyKey) (string, string, error) {
	if key == nil {
		return "", "", nil
	}
	if key.Key == "" {
		return "", "", fmt.Errorf("%w: append %s: empty idempotency key", events.ErrInvalid, streamID)
	}
	r := idempotencyRecord{RequestHash: key.RequestHash, Status: key.Status, StreamID: streamID, EventIDs: make([]uuid.UUID, len(recs))}
	for i, rec := range recs {
		r.EventIDs[i] = rec.p.ID
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return "", "", fmt.Errorf("append %s: idempotency key: %w", streamID, err)
	}
	return key.Key, string(raw), nil
}

// LookupIdempotency returns what the append that carried key recorded under it; false when no
// append did (or its record was pruned).
func (s *Store) LookupIdempotency(ctx context.Context, key string) (events.IdempotentAppend, bool, error) {
	out := events.IdempotentAppend{Key: key}
	stored, err := s.rdb.HGet(ctx, s.keyIdempotency(), key).Result()
	if errors.Is(err, goredis.Nil) {
		return out, false, nil
	}
	if err != nil {
		return out, false, fmt.Errorf("idempotency key %q: %w", key, err)
	}
	if err := decodeIdempotency(stored, &out); err != nil {
		return out, false, fmt.Errorf("idempotency key %q: %w", key, err)
	}
	return out, true, nil
}

// decodeIdempotency reads a stored record: "firstVersion lastVersion firstPosition
// lastPosition µs json".
func decodeIdempotency(stored string, out *events.IdempotentAppend) error {
	fields := strings.SplitN(stored, " ", 6)
	if len(fields) != 6 {
		return errCorrupt
	}
	var nums [4]int64
	for i := range nums {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %w", errCorrupt, err)
		}
		nums[i] = n
	}
	at, err := parseMicros(fields[4])
	if err != nil {
		return err
	}
	var r idempotencyRecord
	if err := json.Unmarshal([]byte(fields[5]), &r); err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	out.RequestHash, out.Status, out.RecordedAt = r.RequestHash, r.Status, at
	out.Result = events.AppendResult{
		StreamID: r.StreamID, FirstVersion: nums[0], LastVersion: nums[1],
		FirstPosition: nums[2], LastPosition: nums[3], EventIDs: r.EventIDs, RecordedAt: at,
	}
	return nil
}

// pruneBatch is how many records one run of the prune script deletes: the script runs alone,
// so a large prune goes in steps that let appends through between them.
const pruneBatch = 1000

// PruneIdempotency deletes the records made more than ttl ago by the server's clock, and
// returns how many. It walks the keys' index by time from the oldest, never the whole set.
func (s *Store) PruneIdempotency(ctx context.Context, ttl time.Duration) (int64, error) {
	var total int64
	for {
		n, err := pruneIdempotencyScript.Run(ctx, s.rdb, []string{s.keyIdempotency(), s.keyIdempotencyTimes()},
			ttl.Microseconds(), pruneBatch).Int64()
		if err != nil {
			return total, fmt.Errorf("prune idempotency keys: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

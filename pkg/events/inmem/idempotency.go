package inmem

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

var _ events.IdempotencyStore = (*Store)(nil)

// recordKey records k, when set, as the key of the append that gave res. The caller holds
// the write lock and has checked that the key is free.
func (s *Store) recordKey(k *events.IdempotencyKey, res events.AppendResult) {
	if k == nil {
		return
	}
	res.EventIDs = slices.Clone(res.EventIDs)
	s.keys[k.Key] = events.IdempotentAppend{
		Key: k.Key, RequestHash: slices.Clone(k.RequestHash), Status: k.Status, Result: res, RecordedAt: res.RecordedAt,
	}
}

// LookupIdempotency returns what was recorded under key.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (events.IdempotentAppend, bool, error) {
	if err := ctx.Err(); err != nil {
		return events.IdempotentAppend{Key: key}, false, fmt.Errorf("idempotency key: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.keys[key]
	if !ok {
		return events.IdempotentAppend{Key: key}, false, nil
	}
	r.RequestHash = slices.Clone(r.RequestHash)
	r.Result.EventIDs = slices.Clone(r.Result.EventIDs)
	return r, true, nil
}

// PruneIdempotency deletes the keys recorded more than ttl ago and returns how many.
func (s *Store) PruneIdempotency(ctx context.Context, ttl time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	cutoff := time.Now().Add(-ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, r := range s.keys {
		if r.RecordedAt.Before(cutoff) {
			delete(s.keys, k)
			n++
		}
	}
	return n, nil
}

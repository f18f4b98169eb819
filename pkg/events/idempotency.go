package events

import (
	"context"
	"errors"
	"time"
)

// IdempotencyKey asks the store to record, atomically with the append that carries it in
// AppendOptions.Idempotency, that a request with this key produced the append: the key, a hash
// of the request and the status it was answered with, beside where the append landed. A
// client that retries the request (a lost response, a timeout) is then answered from the record
// instead of running the command twice. The key is recorded exactly when the events are: both
// or neither.
type IdempotencyKey struct {
	Key string
	// RequestHash identifies the request the key was first used with, so that the key reused
	// for another request can be refused.
	RequestHash []byte
	// Status is the status the request was answered with (201, 200).
	Status int
}

// IdempotentAppend is what a store recorded under an idempotency key.
type IdempotentAppend struct {
	Key         string
	RequestHash []byte
	Status      int
	// Result is where the append landed. A store keeps at least its StreamID, LastVersion and
	// LastPosition; the other fields may be zero.
	Result     AppendResult
	RecordedAt time.Time
}

// IdempotencyStore is a store that records idempotency keys with its appends: its Append
// honours AppendOptions.Idempotency. A store that does not must refuse an append that carries
// a key (ErrIdempotencyUnsupported), never append without recording it.
type IdempotencyStore interface {
	// LookupIdempotency returns what was recorded under key; false when nothing was (or the
	// record has been pruned).
	LookupIdempotency(ctx context.Context, key string) (IdempotentAppend, bool, error)
	// PruneIdempotency deletes the records made more than ttl ago and returns how many. A
	// request retried after that is treated as new.
	PruneIdempotency(ctx context.Context, ttl time.Duration) (int64, error)
}

var (
	// ErrIdempotencyKeyTaken: an append with the same idempotency key was recorded first. The
	// append that carried the key again recorded nothing.
	ErrIdempotencyKeyTaken = errors.New("idempotency key already used")
	// ErrIdempotencyUnsupported: the store does not record idempotency keys, so it refused an
	// append that carried one.
	ErrIdempotencyUnsupported = errors.New("the event store does not record idempotency keys")
)

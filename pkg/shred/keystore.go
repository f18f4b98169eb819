package shred

import (
	"context"
	"time"
)

// WrappedKey is a subject's data key as a KeyStore keeps it: wrapped by a KEK.
type WrappedKey struct {
	Subject   string
	KEKID     string // the KEK that wrapped it (KEK.ID)
	Wrapped   []byte
	CreatedAt time.Time
}

// Erasure is the tombstone of an erased subject.
type Erasure struct {
	Subject  string
	ErasedAt time.Time
	By       string // who asked for it (a principal's name), never the subject's personal data
	Reason   string // why, for the record (a ticket, "art. 17 request"), never personal data
}

// KeyStore keeps the subjects' wrapped data keys and the tombstones of erased subjects.
// A tombstone is permanent: no method makes an erased subject get a key again.
type KeyStore interface {
	// Create stores k as its subject's key unless the subject has a key already, and returns
	// the subject's key after the call: k, or the one stored before. Creators racing for a new
	// subject all get the same key. It returns ErrErased for an erased subject.
	Create(ctx context.Context, k WrappedKey) (WrappedKey, error)
	// Get returns the subject's key: ErrNoKey when it has none, ErrErased when it was erased.
	Get(ctx context.Context, subject string) (WrappedKey, error)
	// Destroy deletes the subject's key, if it has one, and records e as its tombstone
	// (ErasedAt zero: now). It is idempotent: for a subject erased already it changes nothing
	// and returns the first tombstone. It returns the tombstone stored.
	Destroy(ctx context.Context, e Erasure) (Erasure, error)
}

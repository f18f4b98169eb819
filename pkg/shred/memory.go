package shred

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// MemoryKeyStore is a KeyStore in memory, for tests and examples: its keys die with the
// process.
type MemoryKeyStore struct {
	mu      sync.Mutex
	keys    map[string]WrappedKey
	erasure map[string]Erasure
}

var _ KeyStore = (*MemoryKeyStore)(nil)

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore {
	return &MemoryKeyStore{keys: map[string]WrappedKey{}, erasure: map[string]Erasure{}}
}

// Create stores k unless its subject has a key or was erased.
func (m *MemoryKeyStore) Create(_ context.Context, k WrappedKey) (WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.erasure[k.Subject]; ok {
		return WrappedKey{}, ErrErased
	}
	if got, ok := m.keys[k.Subject]; ok {
		return copyKey(got), nil
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	k = copyKey(k)
	m.keys[k.Subject] = k
	return copyKey(k), nil
}

// Get returns the subject's key.
func (m *MemoryKeyStore) Get(_ context.Context, subject string) (WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.erasure[subject]; ok {
		return WrappedKey{}, ErrErased
	}
	k, ok := m.keys[subject]
	if !ok {
		return WrappedKey{}, ErrNoKey
	}
	return copyKey(k), nil
}

// Destroy deletes the subject's key and keeps the tombstone.
func (m *MemoryKeyStore) Destroy(_ context.Context, e Erasure) (Erasure, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, ok := m.erasure[e.Subject]; ok {
		return got, nil
	}
	if e.ErasedAt.IsZero() {
		e.ErasedAt = time.Now().UTC()
	}
	delete(m.keys, e.Subject)
	m.erasure[e.Subject] = e
	return e, nil
}

func copyKey(k WrappedKey) WrappedKey {
	k.Wrapped = bytes.Clone(k.Wrapped)
	return k
}

package shred

import (
	"container/list"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Prefix starts every value that Encrypt returns; the version names the format:
// "enc:v1:" + base64(12-byte nonce || AES-256-GCM ciphertext and tag), standard encoding.
const Prefix = "enc:v1:"

// Cipher encrypts and decrypts a subject's values; *Keyring is one.
type Cipher interface {
	Encrypt(ctx context.Context, subject, plaintext string) (string, error)
	Decrypt(ctx context.Context, subject, value string) (string, error)
}

var _ Cipher = (*Keyring)(nil)

// Default cache settings of a Keyring.
const (
	DefaultCacheTTL  = 30 * time.Second
	DefaultCacheSize = 1024
)

// Options tune a Keyring; the zero value means the defaults.
type Options struct {
	// CacheTTL is how long an unwrapped data key (or a subject's erasure) is used from memory
	// before the KeyStore is asked again (DefaultCacheTTL when zero; negative: no cache). It
	// bounds how long another process can still decrypt a subject erased elsewhere; the
	// process that erases stops at once, even for a lookup that read the key before.
	CacheTTL time.Duration
	// CacheSize bounds the number of subjects cached (DefaultCacheSize when zero); the least
	// recently used is dropped first.
	CacheSize int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Keyring encrypts subjects' values with their data keys, creating a subject's key on its
// first Encrypt, and erases subjects. It is safe for concurrent use.
type Keyring struct {
	kek   KEK
	store KeyStore
	ttl   time.Duration
	size  int
	now   func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	items map[string]*list.Element
	// erasures counts the erasures begun and ended: a key read from the store while it
	// changed may be one an erasure destroyed since, and is not cached (see key).
	erasures uint64
}

type entry struct {
	subject string
	aead    cipher.AEAD // nil: erased
	expires time.Time
}

// NewKeyring returns a Keyring whose data keys are wrapped by kek and kept in store.
func NewKeyring(kek KEK, store KeyStore, opts Options) *Keyring {
	r := &Keyring{kek: kek, store: store, ttl: opts.CacheTTL, size: opts.CacheSize, now: opts.Now,
		lru: list.New(), items: map[string]*list.Element{}}
	if r.ttl == 0 {
		r.ttl = DefaultCacheTTL
	}
	if r.size <= 0 {
		r.size = DefaultCacheSize
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// KEK is the keyring's key-encryption key.
func (r *Keyring) KEK() KEK { return r.kek }

// IsEncrypted reports whether value has the form Encrypt gives.
func IsEncrypted(value string) bool { return strings.HasPrefix(value, Prefix) }

// IsEncrypted reports whether value has the form Encrypt gives.
func (r *Keyring) IsEncrypted(value string) bool { return IsEncrypted(value) }

// Encrypt seals plaintext with the subject's data key, creating the key if the subject has
// none. It returns ErrErased for an erased subject.
func (r *Keyring) Encrypt(ctx context.Context, subject, plaintext string) (string, error) {
	aead, err := r.key(ctx, subject, true)
	if err != nil {
		return "", fmt.Errorf("encrypt for %s: %w", subject, err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(seal(aead, []byte(plaintext), []byte(subject))), nil
}

// Decrypt opens a value that Encrypt sealed for the subject. A value without the "enc:v1:"
// prefix (recorded before encryption was on) is returned as it is. It returns ErrErased when
// the subject was erased, ErrInvalidCiphertext when the value is damaged or was sealed for
// another subject, ErrNoKey when the subject never had a key, ErrKeyUnusable when the
// subject's data key does not unwrap (a wrong KEK or a damaged key row: for an operator to
// fix, never the value's fault); any other error is the key store's or the KEK's, worth a
// retry.
func (r *Keyring) Decrypt(ctx context.Context, subject, value string) (string, error) {
	if !IsEncrypted(value) {
		return value, nil
	}
	sealed, err := base64.StdEncoding.DecodeString(value[len(Prefix):])
	if err != nil {
		return "", fmt.Errorf("decrypt for %s: %w", subject, ErrInvalidCiphertext)
	}
	aead, err := r.key(ctx, subject, false)
	if err != nil {
		return "", fmt.Errorf("decrypt for %s: %w", subject, err)
	}
	clear, err := open(aead, sealed, []byte(subject))
	if err != nil {
		return "", fmt.Errorf("decrypt for %s: %w", subject, err)
	}
	return string(clear), nil
}

// Erase destroys the subject's data key for good (see Keyring.EraseWith).
func (r *Keyring) Erase(ctx context.Context, subject string) error {
	_, err := r.EraseWith(ctx, Erasure{Subject: subject})
	return err
}

// EraseWith destroys e.Subject's data key and records e as its tombstone; a subject erased
// already keeps its first tombstone, which is returned. This process stops decrypting the
// subject's values at once; others within their CacheTTL.
func (r *Keyring) EraseWith(ctx context.Context, e Erasure) (Erasure, error) {
	if e.ErasedAt.IsZero() {
		e.ErasedAt = r.now().UTC()
	}
	r.erasing()
	got, err := r.store.Destroy(ctx, e)
	if err != nil {
		r.forget(e.Subject)
		r.erasing()
		return Erasure{}, fmt.Errorf("erase %s: %w", e.Subject, err)
	}
	r.remember(e.Subject, nil)
	r.erasing()
	return got, nil
}

// key returns the subject's data key, from the cache or the store; create makes one if the
// subject has none.
func (r *Keyring) key(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	if subject == "" {
		return nil, errors.New("empty subject")
	}
	if aead, erased, ok := r.cached(subject); ok {
		if erased {
			return nil, ErrErased
		}
		return aead, nil
	}
	since := r.erasuresSoFar()
	wk, err := r.store.Get(ctx, subject)
	switch {
	case errors.Is(err, ErrNoKey) && create:
		if wk, err = r.create(ctx, subject); err != nil {
			return r.failed(subject, err)
		}
	case err != nil:
		return r.failed(subject, err)
	}
	if wk.KEKID != r.kek.ID() {
		return nil, fmt.Errorf("%w: it is wrapped by KEK %q, this keyring has %q", ErrKeyUnusable, wk.KEKID, r.kek.ID())
	}
	dk, err := r.kek.Unwrap(ctx, wk.Wrapped)
	if errors.Is(err, ErrInvalidCiphertext) { // a KEK that reuses the sentinel: the key's fault, not a value's
		err = ErrKeyUnusable
	}
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	aead, err := newGCM(dk)
	clear(dk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyUnusable, err)
	}
	r.rememberKey(subject, aead, since)
	return aead, nil
}

func (r *Keyring) failed(subject string, err error) (cipher.AEAD, error) {
	if errors.Is(err, ErrErased) {
		r.remember(subject, nil)
	}
	return nil, err
}

func (r *Keyring) create(ctx context.Context, subject string) (WrappedKey, error) {
	dk := make([]byte, KeySize)
	if _, err := rand.Read(dk); err != nil {
		return WrappedKey{}, fmt.Errorf("new data key: %w", err)
	}
	wrapped, err := r.kek.Wrap(ctx, dk)
	clear(dk)
	if err != nil {
		return WrappedKey{}, fmt.Errorf("wrap data key: %w", err)
	}
	return r.store.Create(ctx, WrappedKey{Subject: subject, KEKID: r.kek.ID(), Wrapped: wrapped, CreatedAt: r.now().UTC()})
}

func (r *Keyring) cached(subject string) (aead cipher.AEAD, erased, ok bool) {
	if r.ttl < 0 {
		return nil, false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.items[subject]
	if !ok {
		return nil, false, false
	}
	e := el.Value.(*entry)
	if !r.now().Before(e.expires) {
		r.lru.Remove(el)
		delete(r.items, subject)
		return nil, false, false
	}
	r.lru.MoveToFront(el)
	return e.aead, e.aead == nil, true
}

// remember caches the subject's key (nil: erased).
func (r *Keyring) remember(subject string, aead cipher.AEAD) {
	if r.ttl < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rememberLocked(subject, aead)
}

func (r *Keyring) rememberLocked(subject string, aead cipher.AEAD) {
	e := &entry{subject: subject, aead: aead, expires: r.now().Add(r.ttl)}
	if el, ok := r.items[subject]; ok {
		el.Value = e
		r.lru.MoveToFront(el)
		return
	}
	r.items[subject] = r.lru.PushFront(e)
	for r.lru.Len() > r.size {
		last := r.lru.Back()
		r.lru.Remove(last)
		delete(r.items, last.Value.(*entry).subject)
	}
}

// erasing notes that an erasure begins or ends.
func (r *Keyring) erasing() {
	r.mu.Lock()
	r.erasures++
	r.mu.Unlock()
}

func (r *Keyring) erasuresSoFar() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.erasures
}

// rememberKey caches a key read from the store when no erasure began or ended since the read
// began (since): a key read before an erasure destroyed it must not replace the erasure's
// marker, nor outlive the erasure in the cache.
func (r *Keyring) rememberKey(subject string, aead cipher.AEAD, since uint64) {
	if r.ttl < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.erasures == since {
		r.rememberLocked(subject, aead)
	}
}

func (r *Keyring) forget(subject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.items[subject]; ok {
		r.lru.Remove(el)
		delete(r.items, subject)
	}
}

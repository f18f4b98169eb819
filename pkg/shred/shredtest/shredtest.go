// Package shredtest is the contract suite that every shred.KeyStore passes, through a
// shred.Keyring as the applications use it: run it from the store's tests with
// TestKeyStore(t, newStore).
//
// It is for tests only and must never be imported by non-test code.
package shredtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/shred"
)

// TestKeyStore runs the contract suite; newStore returns an empty store for each subtest.
func TestKeyStore(t *testing.T, newStore func(t *testing.T) shred.KeyStore) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("OtherSubject", func(t *testing.T) { testOtherSubject(t, newStore(t)) })
	t.Run("ErrErased", func(t *testing.T) { testErased(t, newStore(t)) })
	t.Run("EraseWithoutKey", func(t *testing.T) { testEraseWithoutKey(t, newStore(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testConcurrentCreate(t, newStore(t)) })
	t.Run("OtherProcess", func(t *testing.T) { testOtherProcess(t, newStore(t)) })
	t.Run("ErrNoKey", func(t *testing.T) { testNoKey(t, newStore(t)) })
}

// NewKEK returns a LocalKEK of a random key.
func NewKEK(tb testing.TB) *shred.LocalKEK {
	tb.Helper()
	key := make([]byte, shred.KeySize)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	kek, err := shred.NewLocalKEK(key)
	if err != nil {
		tb.Fatal(err)
	}
	return kek
}

// Subject returns a subject id of its own for the test.
func Subject(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("subject-%x", b)
}

func testRoundTrip(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	r := shred.NewKeyring(NewKEK(t), store, shred.Options{})
	sub := Subject(t)
	const clear = "ada@example.com"
	a, err := r.Encrypt(ctx, sub, clear)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Encrypt(ctx, sub, clear)
	if err != nil {
		t.Fatal(err)
	}
	if !shred.IsEncrypted(a) || strings.Contains(a, clear) || strings.Contains(a, "ada") {
		t.Fatalf("Encrypt = %q, want an enc:v1: value without the clear text", a)
	}
	if a == b {
		t.Errorf("two encryptions of one value are equal (%q): the nonce is not fresh", a)
	}
	for _, v := range []string{a, b} {
		got, err := r.Decrypt(ctx, sub, v)
		if err != nil || got != clear {
			t.Errorf("Decrypt = %q, %v; want %q", got, err, clear)
		}
	}
	// A fresh keyring (no cache) reads the key back from the store.
	got, err := shred.NewKeyring(r.KEK(), store, shred.Options{CacheTTL: -1}).Decrypt(ctx, sub, a)
	if err != nil || got != clear {
		t.Errorf("Decrypt by another keyring = %q, %v; want %q", got, err, clear)
	}
	if got, err := r.Decrypt(ctx, sub, "plain"); err != nil || got != "plain" {
		t.Errorf("Decrypt(clear value) = %q, %v; want it as it is", got, err)
	}
	if _, err := r.Decrypt(ctx, sub, a[:len(a)-4]+"AAAA"); !errors.Is(err, shred.ErrInvalidCiphertext) {
		t.Errorf("Decrypt(tampered) = %v, want ErrInvalidCiphertext", err)
	}
	if _, err := r.Decrypt(ctx, sub, shred.Prefix+"!!"); !errors.Is(err, shred.ErrInvalidCiphertext) {
		t.Errorf("Decrypt(not base64) = %v, want ErrInvalidCiphertext", err)
	}
	if _, err := shred.NewKeyring(NewKEK(t), store, shred.Options{}).Decrypt(ctx, sub, a); err == nil {
		t.Error("a keyring with another KEK decrypted the value")
	}
}

func testOtherSubject(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	r := shred.NewKeyring(NewKEK(t), store, shred.Options{})
	a, b := Subject(t), Subject(t)
	if _, err := r.Encrypt(ctx, b, "b's"); err != nil {
		t.Fatal(err)
	}
	v, err := r.Encrypt(ctx, a, "a's")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Decrypt(ctx, b, v); !errors.Is(err, shred.ErrInvalidCiphertext) {
		t.Errorf("Decrypt of a's value as b's = %q, %v; want ErrInvalidCiphertext", got, err)
	}
}

func testErased(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	r := shred.NewKeyring(NewKEK(t), store, shred.Options{})
	sub := Subject(t)
	v, err := r.Encrypt(ctx, sub, "Ada")
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.EraseWith(ctx, shred.Erasure{Subject: sub, By: "dpo", Reason: "art. 17"})
	if err != nil {
		t.Fatal(err)
	}
	if first.ErasedAt.IsZero() || first.By != "dpo" || first.Reason != "art. 17" {
		t.Errorf("EraseWith = %+v, want the tombstone with its time, by and reason", first)
	}
	if _, err := r.Decrypt(ctx, sub, v); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Decrypt after Erase = %v, want ErrErased", err)
	}
	if _, err := r.Encrypt(ctx, sub, "Ada again"); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Encrypt after Erase = %v, want ErrErased (no new key for an erased subject)", err)
	}
	fresh := shred.NewKeyring(r.KEK(), store, shred.Options{})
	if _, err := fresh.Encrypt(ctx, sub, "Ada again"); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Encrypt after Erase by another keyring = %v, want ErrErased", err)
	}
	again, err := r.EraseWith(ctx, shred.Erasure{Subject: sub, By: "someone else", ErasedAt: first.ErasedAt.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !again.ErasedAt.Equal(first.ErasedAt) || again.By != "dpo" {
		t.Errorf("second EraseWith = %+v, want the first tombstone %+v", again, first)
	}
	if _, err := store.Get(ctx, sub); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Get after Destroy = %v, want ErrErased", err)
	}
	if _, err := store.Create(ctx, shred.WrappedKey{Subject: sub, KEKID: "x", Wrapped: []byte("k")}); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Create after Destroy = %v, want ErrErased", err)
	}
}

func testEraseWithoutKey(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	r := shred.NewKeyring(NewKEK(t), store, shred.Options{})
	sub := Subject(t)
	if err := r.Erase(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Encrypt(ctx, sub, "Ada"); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Encrypt for a subject erased before it had a key = %v, want ErrErased", err)
	}
}

func testNoKey(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	r := shred.NewKeyring(NewKEK(t), store, shred.Options{})
	v, err := r.Encrypt(ctx, Subject(t), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decrypt(ctx, Subject(t), v); !errors.Is(err, shred.ErrNoKey) {
		t.Errorf("Decrypt for a subject without a key = %v, want ErrNoKey", err)
	}
}

func testConcurrentCreate(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	kek := NewKEK(t)
	sub := Subject(t)
	const n = 8
	values := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			// A keyring each, as separate processes would have: no shared cache.
			values[i], errs[i] = shred.NewKeyring(kek, store, shred.Options{}).Encrypt(ctx, sub, fmt.Sprint(i))
		})
	}
	close(start)
	wg.Wait()
	reader := shred.NewKeyring(kek, store, shred.Options{CacheTTL: -1})
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Encrypt %d: %v", i, errs[i])
		}
		if got, err := reader.Decrypt(ctx, sub, values[i]); err != nil || got != fmt.Sprint(i) {
			t.Errorf("Decrypt of value %d = %q, %v: the racing encryptions used different keys", i, got, err)
		}
	}
}

func testOtherProcess(t *testing.T, store shred.KeyStore) {
	ctx := context.Background()
	kek := NewKEK(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	eraser := shred.NewKeyring(kek, store, shred.Options{})
	other := shred.NewKeyring(kek, store, shred.Options{CacheTTL: time.Minute, Now: clock})
	sub := Subject(t)
	v, err := eraser.Encrypt(ctx, sub, "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Decrypt(ctx, sub, v); err != nil {
		t.Fatal(err)
	}
	if err := eraser.Erase(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Decrypt(ctx, sub, v); err != nil {
		t.Errorf("Decrypt from the cache within CacheTTL = %v, want the cached key used", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := other.Decrypt(ctx, sub, v); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Decrypt in another process CacheTTL after Erase = %v, want ErrErased", err)
	}
}

package shred_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
)

func TestMemoryKeyStore(t *testing.T) {
	shredtest.TestKeyStore(t, func(*testing.T) shred.KeyStore { return shred.NewMemoryKeyStore() })
}

func TestLocalKEK(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		file, err := shred.NewKeyFile()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		kek, err := shred.LoadLocalKEK(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(kek.ID(), "local:") || strings.Contains(kek.ID(), strings.TrimSpace(string(file))) {
			t.Errorf("ID = %q, want local:<digest>", kek.ID())
		}
		w, err := kek.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := kek.Unwrap(ctx, w)
		if err != nil || string(got) != "0123456789abcdef0123456789abcdef" {
			t.Errorf("Unwrap = %q, %v", got, err)
		}
		if _, err := shredtest.NewKEK(t).Unwrap(ctx, w); err == nil {
			t.Error("another KEK unwrapped the key")
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		for _, b64 := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
			if _, err := shred.ParseLocalKEK(b64); err == nil {
				t.Errorf("ParseLocalKEK(%q) accepted it", b64)
			}
		}
		if _, err := shred.LoadLocalKEK(filepath.Join(t.TempDir(), "missing")); err == nil {
			t.Error("LoadLocalKEK of a missing file succeeded")
		}
	})
}

// countingStore counts the Get calls that reach the store.
type countingStore struct {
	shred.KeyStore
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, subject string) (shred.WrappedKey, error) {
	c.gets.Add(1)
	return c.KeyStore.Get(ctx, subject)
}

func TestKeyring_Cache(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{KeyStore: shred.NewMemoryKeyStore()}
	kek := shredtest.NewKEK(t)
	writer := shred.NewKeyring(kek, store, shred.Options{CacheTTL: -1})
	subjects := []string{"a", "b", "c"}
	values := map[string]string{}
	for _, s := range subjects {
		v, err := writer.Encrypt(ctx, s, s)
		if err != nil {
			t.Fatal(err)
		}
		values[s] = v
	}
	r := shred.NewKeyring(kek, store, shred.Options{CacheSize: 2})
	decrypt := func(s string) {
		t.Helper()
		if got, err := r.Decrypt(ctx, s, values[s]); err != nil || got != s {
			t.Fatalf("Decrypt(%s) = %q, %v", s, got, err)
		}
	}
	store.gets.Store(0)
	decrypt("a")
	decrypt("a")
	if got := store.gets.Load(); got != 1 {
		t.Errorf("store reads for two decryptions of one subject = %d, want 1 (cached)", got)
	}
	decrypt("b")
	decrypt("c") // drops a, the least recently used of two
	store.gets.Store(0)
	decrypt("c")
	decrypt("a")
	if got := store.gets.Load(); got != 1 {
		t.Errorf("store reads = %d, want 1: the cache holds at most CacheSize subjects", got)
	}
}

type failingStore struct{ shred.KeyStore }

var errDown = errors.New("key store down")

func (failingStore) Get(context.Context, string) (shred.WrappedKey, error) {
	return shred.WrappedKey{}, errDown
}

func TestKeyring_DependencyFailure(t *testing.T) {
	r := shred.NewKeyring(shredtest.NewKEK(t), failingStore{shred.NewMemoryKeyStore()}, shred.Options{})
	_, err := r.Decrypt(context.Background(), "a", shred.Prefix+base64.StdEncoding.EncodeToString(make([]byte, 40)))
	if !errors.Is(err, errDown) || errors.Is(err, shred.ErrInvalidCiphertext) || errors.Is(err, shred.ErrErased) {
		t.Errorf("Decrypt with the store down = %v, want the store's error, neither erased nor invalid", err)
	}
}

// damagingStore returns every key with its wrapped bytes damaged, as a corrupted row does.
type damagingStore struct{ shred.KeyStore }

func (d damagingStore) Get(ctx context.Context, subject string) (shred.WrappedKey, error) {
	k, err := d.KeyStore.Get(ctx, subject)
	if err == nil {
		k.Wrapped = append([]byte(nil), k.Wrapped...)
		k.Wrapped[len(k.Wrapped)-1] ^= 1
	}
	return k, err
}

func TestKeyring_KeyUnusable(t *testing.T) {
	ctx := context.Background()
	kek, store := shredtest.NewKEK(t), shred.NewMemoryKeyStore()
	v, err := shred.NewKeyring(kek, store, shred.Options{}).Encrypt(ctx, "a", "clear")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*shred.Keyring{
		"DamagedKeyRow": shred.NewKeyring(kek, damagingStore{store}, shred.Options{}),
		"AnotherKEK":    shred.NewKeyring(shredtest.NewKEK(t), store, shred.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.Decrypt(ctx, "a", v)
			if !errors.Is(err, shred.ErrKeyUnusable) || errors.Is(err, shred.ErrInvalidCiphertext) {
				t.Errorf("Decrypt = %v, want ErrKeyUnusable and not ErrInvalidCiphertext", err)
			}
		})
	}
}

// gatedStore holds every Get that has read its key until release is closed.
type gatedStore struct {
	shred.KeyStore
	read    chan struct{}
	release chan struct{}
}

func (g *gatedStore) Get(ctx context.Context, subject string) (shred.WrappedKey, error) {
	k, err := g.KeyStore.Get(ctx, subject)
	g.read <- struct{}{}
	<-g.release
	return k, err
}

func TestKeyring_EraseDuringLookup(t *testing.T) {
	ctx := context.Background()
	kek, mem := shredtest.NewKEK(t), shred.NewMemoryKeyStore()
	v, err := shred.NewKeyring(kek, mem, shred.Options{}).Encrypt(ctx, "a", "clear")
	if err != nil {
		t.Fatal(err)
	}
	store := &gatedStore{KeyStore: mem, read: make(chan struct{}, 1), release: make(chan struct{})}
	r := shred.NewKeyring(kek, store, shred.Options{CacheTTL: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, err := r.Decrypt(ctx, "a", v)
		done <- err
	}()
	<-store.read // the lookup read the key before the erasure
	if err := r.Erase(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	close(store.release)
	<-done
	if got, err := r.Decrypt(ctx, "a", v); !errors.Is(err, shred.ErrErased) {
		t.Errorf("Decrypt after Erase = %q, %v; want ErrErased: the erasing process stops at once", got, err)
	}
}

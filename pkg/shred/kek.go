package shred

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// KEK is a key-encryption key: it wraps the subjects' data keys for storage and unwraps them
// for use. A cloud KMS plugs in here; its failures are returned as they are, for the caller to
// retry.
type KEK interface {
	// ID names the KEK (never its secret), recorded beside every key it wrapped so that a
	// rotation can tell which KEK to unwrap with.
	ID() string
	// Wrap encrypts a data key.
	Wrap(ctx context.Context, dataKey []byte) ([]byte, error)
	// Unwrap decrypts a data key that Wrap encrypted.
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
}

// KeySize is the size of a data key and of a LocalKEK's key: 32 bytes (AES-256).
const KeySize = 32

// LocalKEK is a KEK from a 32-byte key held by the process (from a mounted Secret), wrapping
// with AES-256-GCM.
type LocalKEK struct {
	id   string
	aead cipher.AEAD
}

var _ KEK = (*LocalKEK)(nil)

// NewLocalKEK returns a KEK of the 32-byte key. Its ID is "local:" and the first 16 hex digits
// of the key's SHA-256, which tells keys apart without revealing them.
func NewLocalKEK(key []byte) (*LocalKEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("local kek: the key has %d bytes, want %d", len(key), KeySize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("local kek: %w", err)
	}
	sum := sha256.Sum256(key)
	return &LocalKEK{id: "local:" + hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// ParseLocalKEK returns the KEK of a key written in standard base64 (surrounding white space
// ignored), as a Secret's file holds it.
func ParseLocalKEK(b64 string) (*LocalKEK, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("local kek: the key is not base64: %w", err)
	}
	return NewLocalKEK(key)
}

// LoadLocalKEK reads a base64 key from a file (a mounted Secret) and returns its KEK.
func LoadLocalKEK(path string) (*LocalKEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("local kek: %w", err)
	}
	k, err := ParseLocalKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// NewKeyFile returns a fresh random key in the form LoadLocalKEK reads: base64 and a newline.
func NewKeyFile() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n"), nil
}

// ID names the key without revealing it.
func (k *LocalKEK) ID() string { return k.id }

// Wrap seals the data key: nonce || AES-256-GCM ciphertext, with the KEK's id as additional
// data.
func (k *LocalKEK) Wrap(_ context.Context, dataKey []byte) ([]byte, error) {
	return seal(k.aead, dataKey, []byte(k.id)), nil
}

// Unwrap opens a key that Wrap sealed; a key wrapped by another KEK, or damaged, fails with
// ErrKeyUnusable.
func (k *LocalKEK) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	key, err := open(k.aead, wrapped, []byte(k.id))
	if err != nil {
		return nil, fmt.Errorf("local kek %s: unwrap: %w", k.id, ErrKeyUnusable)
	}
	return key, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(aead cipher.AEAD, plaintext, ad []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("shred: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return aead.Seal(nonce, nonce, plaintext, ad)
}

func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrInvalidCiphertext
	}
	n := aead.NonceSize()
	out, err := aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrInvalidCiphertext
	}
	return out, nil
}

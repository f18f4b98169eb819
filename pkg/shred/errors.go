package shred

import "errors"

var (
	// ErrErased: the subject was erased; its data key is gone for good.
	ErrErased = errors.New("shred: subject erased")
	// ErrNoKey: the subject has no data key (KeyStore.Get), or an encrypted value names a
	// subject that never had one.
	ErrNoKey = errors.New("shred: no data key")
	// ErrInvalidCiphertext: a value is not a well-formed ciphertext, or it does not open with
	// its subject's key (damaged, or sealed for another subject).
	ErrInvalidCiphertext = errors.New("shred: invalid ciphertext")
	// ErrKeyUnusable: the subject's data key cannot be unwrapped: wrong key-encryption key or a damaged key row.
	ErrKeyUnusable = errors.New("shred: data key unusable")
)

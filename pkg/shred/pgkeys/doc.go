// Package pgkeys is the PostgreSQL shred.KeyStore: the subjects' wrapped data keys and the
// tombstones of erased subjects in the table annals_subject_keys, created by its own
// migrations (Migrate, recorded in annals_subject_keys_migrations).
//
// It stores only keys wrapped by a KEK, never a clear data key, and never deletes a tombstone:
// a subject erased once stays erased.
package pgkeys

// Package shred erases personal data by crypto-shredding: each subject (a user) has a data
// key of its own, personal values are recorded encrypted with it, and erasing the subject
// destroys the key, so that every copy of the values (events, Kafka payloads, snapshots,
// read models, audit logs) becomes unreadable at once while the records themselves, and any
// chain that hashes them, stay intact.
//
// Backups of the KeyStore are the limit: a backup taken before the erasure holds the
// subject's wrapped data key, which the same KEK unwraps, so restoring it brings the key
// back. Keep such backups no longer than the erasure deadline. Re-wrapping the live keys with
// a new KEK and destroying the old one would make old backups unreadable, but the package has
// no rotation: a Keyring refuses a key wrapped by another KEK (ErrKeyUnusable).
//
// A Keyring encrypts and decrypts string values: a ciphertext is itself a string,
// "enc:v1:" + base64(nonce || AES-256-GCM ciphertext), sealed with the subject as additional
// data, so JSON and Avro string fields keep their types and a value moved to another subject
// does not decrypt. Data keys are kept in a KeyStore wrapped (encrypted) by a KEK: LocalKEK
// holds a 32-byte key read from a mounted Secret; a cloud KMS plugs in by implementing KEK.
// pkg/shred/pgkeys is the PostgreSQL KeyStore.
//
// Erasure is final. A KeyStore keeps a tombstone of every erased subject, and a subject with
// a tombstone never gets a new key: Encrypt and Decrypt for it answer ErrErased. An
// application that still needs to record about an erased subject records no personal data
// for it.
//
// Errors are classified so that readers can act on them: ErrErased (the subject was erased:
// show the value as erased), ErrInvalidCiphertext (the value itself is damaged or belongs to
// another subject: a fault of the record), ErrNoKey (an encrypted value whose subject has no
// key), ErrKeyUnusable (the subject's data key does not unwrap: a wrong KEK or a damaged key
// row, for an operator to fix; never the record's fault, so pause and retry rather than
// reject the record). Any other error is a failure of a dependency (the key store, the KMS):
// retry it.
//
// The package depends on the standard library only: never on pgx, a KMS client or any
// service. It never logs, prints or returns a data key, a KEK or a clear value in an error.
package shred

// Package signing signs the records the relay publishes and verifies them where they are
// consumed, so that a consumer acts only on events the relay published. Anyone who can write
// to the event topics can write a record keyed user-<id>; without a signature a consumer
// cannot tell it from the relay's, and a forged event becomes a read-model change, an email
// and an audit entry for an event the event store never held.
//
// # The signature
//
// The relay adds one header, signature (kafkawire.HeaderSignature), to every record:
//
//	hmac-sha256:<key id>:<64 lower-case hex digits>
//
// The digits are the HMAC-SHA256, keyed with the key's secret (its UTF-8 bytes), of the
// record's signed content:
//
//	"annals.record.v1", a zero byte,
//	the record's key and then its value, each as a 4-byte big-endian length and the bytes,
//	then each signed header in the order of SignedHeaders: a zero byte when the record does
//	not have it, or a one byte followed by the value's length and bytes as above.
//
// The signed headers are every header the relay writes but the signature itself (event id,
// type, stream version, global position, correlation and causation ids, recorded-at,
// content type, schema fingerprint, metadata): everything a consumer decodes. A record that
// has one of them twice, or two signatures, does not verify, since consumers would read one
// of the copies and which one would be up to them. Other headers (a tracing header a proxy
// adds, the headers of a dead letter) are not covered and must not be trusted. The topic,
// partition and timestamp are not covered either, so that a record copied to a mirror or
// redriven keeps its signature.
//
// The layout is written out here so that a consumer in another language can check a record
// with its own standard library (javax.crypto.Mac, Python's hmac).
//
// # Why HMAC-SHA256 and not Ed25519
//
// An Ed25519 signature would let consumers hold only a public key, so that a compromised
// consumer could not sign. In Annals that buys nothing: every consumer holds the event
// store's credentials (its inbox, stream blocks and read models live in that database), and
// whoever has them can append to the outbox, which the relay then signs. A key shared by the
// relay and the consumers is as strong as the database password they already share. Checking
// a record's HMAC takes a few microseconds, an Ed25519 signature's some fifty times as long
// (4 µs against 190 µs on the machine the tests run on, BenchmarkVerifier_Verify), and every
// record is checked by every consumer group and by the notifier's user directory; and
// HMAC-SHA256 is in every language's standard library.
//
// # Keys and rotation
//
// A key is written <id>:<secret>: an id of 1 to 32 letters, digits, dots, dashes and
// underscores, which travels in the header so that a verifier knows which secret to use, and
// a secret of at least 32 bytes (44 characters of base64 from 32 random bytes, as
// `openssl rand -base64 32` writes). The relay signs with one key; a Verifier accepts any of
// several. To rotate: give every consumer the new key as an accepted one, then switch the
// relay to it, and drop the old key once no record signed with it is left to consume (or to
// replay: a record signed with a key that is no longer accepted does not verify).
//
// # What it does not do
//
// A signature says who published a record, not that it is new: a copy of a genuine record
// verifies. Consumers skip events they have applied before by event id (consume.Inbox), so a
// copy changes nothing.
//
// It must never print or log a secret (a Key prints as its id), never accept a record that no
// key it holds has signed, and never depend on Annals packages other than pkg/kafkawire.
package signing

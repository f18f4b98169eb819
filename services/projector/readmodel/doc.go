// Package readmodel is the projector's read models of users and orders in PostgreSQL: the
// tables, the statement each event applies to them, the queries of the query API, and the
// rebuild from the event store.
//
// The read models follow the writer's events exactly: their types and data shapes are the
// reference domain's (internal/domain), and each event changes its stream's row as the writer's
// aggregate changes its state, so a row is the aggregate's state at the row's version plus
// what the events tell about time (created, confirmed, cancelled and shipped at the events'
// recording times). Money is integer cents.
//
// Apply applies one event inside the caller's transaction (the consumer runtime's unit, with
// the inbox claim), in one statement guarded by the stream's version: a duplicate changes
// nothing, a gap is refused with ErrGap and retried, and an event that is malformed or that
// its stream's state refuses is a consume.Permanent error for the dead-letter topic. Nothing is
// ever half-applied.
//
// The consumer applies a lane's share of a batch at once (HandleBatch): it reads the rows of
// the events' streams, changes each in Go as the events' statements would, one event after the
// other, and writes it once, guarded by the version it read. A batch in which any event would
// be skipped, held back or refused does not apply at all, and its events go through Apply one
// by one, which decides.
//
// The tables come in generations; a one-row pointer names the live one. Rebuild fills the next
// generation from the event store while the live one is served, then switches the pointer in a
// transaction that applies waits for (they hold a transaction-level advisory lock shared that
// the switch takes exclusively). Queries read the pointer and then the live tables, without
// locks.
//
// Reprocess applies the events of a time range again: it rebuilds, from the event store, the
// rows of the streams with an event in the range, chunk by chunk on the live generation, with
// the rows locked so that live applies wait and then carry on from the rebuilt rows.
//
// Users' emails and names arrive encrypted when the writer records them so (pkg/shred):
// Options.Keys decrypts them before they are applied, on every path (Apply, HandleBatch,
// Rebuild, Reprocess). A value whose user's data key is destroyed is applied as Erased, and
// UserPersonalDataErased empties the user's email and name, as the writer's aggregate does, so a rebuild after an erasure brings nothing back. The key store failing is a dependency's failure, retried; a
// damaged ciphertext is the event's fault, Permanent.
//
// The package never writes to the event store, and never applies an event out of its stream's
// order.
package readmodel

// Package mongodb is an event store on MongoDB: an events.Store held in a MongoDB database (or
// a server of its wire protocol, FerretDB), through the official Go driver. It passes the
// contract suite of pkg/events (eventstest.TestStore), so code written against events.Store
// behaves as it does on the PostgreSQL store. It is a library part only: no service reads
// EVENT_STORE_TYPE=mongodb yet, and this store has no outbox, so nothing appended here reaches
// the relay or Kafka (see "The outbox and the relay" below).
//
// It must never use a multi-document transaction (FerretDB has none, and a store that needs
// one would need a replica set), never import pgx, Kafka or anything of internal/ or
// services/, and never hand out an event of ReadAll past a position that a slower append may
// still fill.
//
// # Layout
//
// Every append is one document of the collection "appends", holding its events: its _id is the
// global position of its first event, and it carries the stream id, the versions of its first
// and last event, the position of its last event and the recording time (Unix microseconds, as
// PostgreSQL keeps them, not BSON dates, which keep milliseconds). One insert of one document
// is atomic on MongoDB and on FerretDB, so an append is all or nothing without a transaction.
// A unique index on (stream, first version) makes the expected version hold: an append takes
// its first version from the stream's last document, and of two appends that read the same
// last document only one can insert. Versions have no gaps because every document starts
// where the stream's last one ended. The other collections are "event_ids" (one document per
// recorded event id, for their uniqueness across the store) and "snapshots".
//
// Data is kept as a string, byte for byte; metadata as a JSON string, so that keys with '.' or
// '$' need no escaping.
//
// # Global positions, and why readers never skip an append
//
// There is no counter of positions. An append inserts its document at the position after the
// store's last event (the highest _id's last position, read just before): the unique _id is
// the lock. Of two appends that read the same last position one inserts and the other gets a
// duplicate key, reads the last position again and retries (after a short random wait once it
// has collided twice). So documents tile the positions from 1 without a hole and without an
// overlap, and a position becomes visible only together with every position below it: an
// append can only choose position p+1 after the document that ends at p is visible. A reader
// that has read up to position p therefore never sees a later append land below p, which a
// counter ($inc, then insert) would allow: there, a slow append that took its positions first
// could become visible after a faster one above it, and a reader that had passed the faster one
// would skip it. ReadAll, and the relay after it, can follow positions without a gap check;
// ReadAll still treats a missing position (a document deleted by hand) as an error, never as a
// reason to skip. Refused appends use up no position either.
//
// The price is that every append of the store contends on the next position, as every append
// of the PostgreSQL store takes its advisory lock: appends are serialised, and throughput is
// bounded by one insert round trip at a time. Within one Store a mutex queues them, so that
// only appends of different processes collide and retry.
//
// # What it guarantees, and what it does not
//
// It guarantees what eventstest.TestStore checks: atomic multi-event appends, the four
// expected-version modes with exactly one winner among concurrent appends at one version,
// versions without gaps, event ids unique across the store, temporal reads (VersionAt,
// ReadAll's Since and Until) at microsecond precision, MaxEventsPerStream and MaxEventBytes,
// and snapshots with PruneSnapshots; and idempotency keys recorded atomically with their
// append (see below).
//
// It does not (yet) guarantee:
//   - statistics without scanning: Stats aggregates over every append document, and ReadAll
//     with Since, Until or Types filters the documents after reading them; PostgreSQL keeps
//     counters in the append's transaction, which this store cannot do without a transaction;
//   - that an id is free again after a crash: an append that dies after it recorded its event
//     ids and before its document keeps those ids taken (a later append with the same ids is
//     refused, as a replay of an event already recorded would be);
//   - the transactional outbox (see the last section);
//   - that an append which returns an error other than a refusal (a lost connection, a
//     cancelled context during the insert) did not land: read the stream to know, as with any
//     store.
//
// # Durability
//
// Every write uses the write concern "majority" with the journal (w: majority, j: true): on
// MongoDB an append returns once a majority of the replica set has it in its journal, so a
// fail-over does not lose it. Reads use the read concern "majority" on a replica set. FerretDB
// accepts these settings and ignores them: an append is durable when its backend has committed
// it (SQLite: the database file under the server's --sqlite-url, with SQLite's own
// synchronous setting; PostgreSQL: that server's synchronous_commit).
//
// # FerretDB and MongoDB
//
// The store uses only what FerretDB 1.24 has: single-document inserts, unique indexes (on _id
// and compound), find with a filter, sort, limit and projection, countDocuments, deleteMany and
// the aggregation stages $unwind and $group. FerretDB reports a duplicate key as MongoDB does
// (code 11000, mongo.IsDuplicateKeyError). Gaps between the two that shaped the design:
//   - findOneAndUpdate with $inc is not atomic on FerretDB 1.24 with its SQLite backend (it reads
//     the document, then writes it back): concurrent $inc of one counter handed out the same
//     positions twice here, and two concurrent upserts of a missing counter failed with a
//     duplicate key. So the store has no counters; only unique keys decide races, and the
//     backend enforces those atomically.
//   - FerretDB refuses distinct when the driver adds maxTimeMS (as it does under a client
//     timeout, options.Client().SetTimeout): the store reads keys with find instead.
//   - FerretDB has no transactions, change streams, replica sets or write concerns; the store
//     uses no transaction, and the relay will poll rather than wait on a change stream.
//
// MongoDB itself must be 4.4 or later.
//
// # Idempotency keys
//
// The store implements events.IdempotencyStore. On PostgreSQL an idempotency key is stored in
// the transaction of the command's append, so that the key exists exactly when the events do.
// Without a transaction the key lives in the append document itself: with
// AppendOptions.Idempotency the document carries the key, the request's hash, the status and
// the recording time, and a unique index on the key (sparse: over the documents that have one)
// refuses a second append with the same key, as the unique _id refuses a second append at the
// same position. The key and the events are one insert, so both are recorded or neither; an
// append refused for its key (events.ErrIdempotencyKeyTaken) writes nothing and frees the
// event ids it had reserved. LookupIdempotency rebuilds the whole AppendResult from the
// document. PruneIdempotency unsets the record of the documents recorded before the time to
// live, found through a sparse index of the records' times; the events stay.
//
// # The outbox and the relay
//
// On PostgreSQL the outbox is a table written in the append's transaction. Here the append
// document is its own outbox: the documents of "appends", in position order, are exactly what
// the relay publishes, and they become visible in that order (see above). The relay will keep
// a checkpoint document {_id: relay name, position} per relay, read the documents after it in
// _id order, publish each stream's events in version order (position order is version order
// within a stream) and move the checkpoint after Kafka has acknowledged, with an update whose
// filter holds the old position so that two relays never both move it (a unique-key insert of
// {_id: relay name + position} if FerretDB's conditional update proves not atomic, as its $inc
// is not): at least once, never skipping, in per-stream order. A poison event will be recorded
// in a document of its own per stream, {_id: stream, position}, which holds the stream's later
// events back while the rest move on, with a metric of held streams and the same operator
// command as on PostgreSQL to release it. That is the relay.Outbox interface of pkg/relay,
// still to be written for this store.
package mongodb

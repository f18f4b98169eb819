// Package mongodb is an event store on MongoDB: an events.Store held in a MongoDB database (or
// a server of its wire protocol, FerretDB), through the official Go driver. It passes the
// contract suite of pkg/events (eventstest.TestStore), so code written against events.Store
// behaves as it does on the PostgreSQL store. It records idempotency keys with their appends
// (events.IdempotencyStore), and its Outbox (relay.Outbox) lets pkg/relay publish every append
// to Kafka. The services run on it when EVENT_STORE_TYPE=mongodb.
//
// It must never use a multi-document transaction (FerretDB has none, and a store that needs
// one would need a replica set), never import pgx, Kafka or anything of internal/ or
// services/, never hand out an event of ReadAll past a position that a slower append may
// still fill, and never take an append out of the outbox before the relay settled it.
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
// recorded event id, for their uniqueness across the store), "snapshots", and the outbox's
// "outbox_holds" and "outbox_leases".
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
// A Store remembers the end of its last append and the head of each stream it appended to,
// and starts the next append from them without reading them: what it remembers can only be
// behind the database, and an append from a stale value collides on the unique _id or
// (stream, first version) and reads the values then. A refusal (a version conflict, a full
// stream) is only ever decided on a head just read.
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
// The store uses only what FerretDB 1.24 has: single-document inserts, unique indexes (on _id,
// compound, and sparse, which FerretDB takes and its backends honour because a missing field
// indexes as NULL and NULLs do not collide), find with a filter, sort, limit and projection,
// countDocuments, updates with $set and $unset whose outcome no race decides, deleteOne,
// deleteMany and the aggregation stages $unwind and $group. FerretDB reports a duplicate key
// as MongoDB does (code 11000, mongo.IsDuplicateKeyError), without naming the index. Gaps
// between the two that shaped the design:
//   - findOneAndUpdate with $inc is not atomic on FerretDB 1.24 with its SQLite backend (it reads
//     the document, then writes it back): concurrent $inc of one counter handed out the same
//     positions twice here, and two concurrent upserts of a missing counter failed with a
//     duplicate key. So the store has no counters; only unique keys decide races, and the
//     backend enforces those atomically.
//   - FerretDB refuses distinct when the driver adds maxTimeMS (as it does under a client
//     timeout, options.Client().SetTimeout): the store reads keys with find instead.
//   - conditional updates are not atomic either: of 30 concurrent updates of one document
//     filtered on {v: 0}, two reported a change. The relays' lease is therefore a sequence
//     of documents decided by their unique _id, never a compare-and-set (see below).
//   - FerretDB 1.24 filters in the server's own code, not in its backend: every query of
//     "appends" other than by stream reads the whole collection (20,000 appends: about a
//     third of a second a query here), and so would the search of the last position and of
//     the stream's head before every append, were they not remembered (see above): appends of
//     one process cost the same whatever the store's size, those of several processes that
//     collide read again. On FerretDB the store suits tests and small stores; on MongoDB the
//     indexes serve every query.
//   - FerretDB has no transactions, change streams, replica sets or write concerns; the store
//     uses no transaction, and the relay polls rather than wait on a change stream.
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
// document is its own outbox: Append writes it with the field ob: true, in the same insert as
// its events, so an append is in the outbox exactly when it is in the store. The relay reads
// the documents that have it in position order (an index on (ob, _id)), publishes them, and
// settles: a published append loses the field (its events stay in the store and in Stats),
// so at least once and never skipping; positions become visible in order (see above), so the
// oldest unpublished append is always the first read. Outbox implements relay.Outbox and
// hands out an outbox.Session; Store.Outbox returns it, NewOutbox builds it from a database.
//
// A stream that cannot be published is held as on PostgreSQL: a document of "outbox_holds"
// whose _id is the stream id (so one hold a stream), and its appends in the outbox marked
// held: true, which reads pass over until Retry or Skip releases them. Holds survive restarts.
// Skip takes the held append out of the outbox and records on its document who skipped it
// and why (field "dead"); its events stay in the store. Without a transaction the writes of a
// settlement or of a release are separate and each idempotent; a release deletes the hold
// before it unmarks the appends, and a Settle that marked appends behind a hold checks the
// hold again after and undoes its marks if the hold went meanwhile (Reconcile catches any
// left behind).
//
// # The lease and its fence
//
// One relay publishes at a time: the one that holds the lease of the lock key. The lease is a
// sequence of terms, each a document of "outbox_leases" with _id "<key>/<term>", its owner and
// its expiry (Options.LeaseTTL, 10 s by default). A relay takes term n+1 when term n has
// expired, by inserting its document: the unique _id lets one relay win. The owner renews its
// term every fifth of the time to live, and is the only writer of that document; Close sets
// its expiry to zero so that another relay takes over at once. A relay that crashes, hangs or
// loses its connection stops renewing, and another takes over when its term expires.
//
// The fence: a session trusts its lease only until a fifth of the time to live before the
// expiry it last wrote. A renewal that lands later than that does not extend the lease: another
// relay may have read the term as expired and started the next one after the renewal looked
// for later terms. After that, or once a renewal finds a later term, Lost reports true
// and Pending and Settle refuse with ErrLeaseLost, so a relay that lost its lease settles
// nothing more, and the relay elects itself again. The check precedes each write rather than
// being part of it (FerretDB has no atomic compare-and-set to make it so), so the fence holds
// as long as the relays' clocks agree and a settlement finishes within that fifth of the time
// to live (2 s by default); a settlement that overran it would only repeat what the new
// leader does too, since settling is idempotent: a record published twice, never a record lost
// or published out of order by the new leader.
//
// Listen wakes the relay after every append of the Store the Outbox came from, in the same
// process (and Options.OnAppend is called after every append). FerretDB has no change
// streams: appends of other processes are found by the relay's poll
// (relay.Config.PollInterval), which on FerretDB reads the whole collection each time.
package mongodb

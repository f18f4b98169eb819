// Package redis is the Redis implementation of the event store: appends under optimistic
// concurrency, paged and temporal reads, statistics and snapshots, behind the same events.Store
// interface as pkg/events/postgres and checked by the same contract suite (eventstest).
//
// # What it guarantees
//
// An append is one Lua script, and Redis runs a script alone: it reads the stream's version,
// checks the expected version, the stream's limit and the event ids, and only then writes the
// events, the stream's index, the global position counter (INCRBY), the counts by type and of
// streams, and the index of recording times. Every check comes before the first write, so a
// refused append writes nothing (Redis does not roll a failed script back). Hence:
//   - all events of an append or none; of concurrent appends expecting one version, one wins;
//   - global positions start at 1 and have no gaps: only a successful append takes them;
//   - recording times come from the server's clock (TIME), in microseconds, and increase
//     strictly from one append to the next, so that temporal reads (AllQuery.Since/Until,
//     VersionAt) are ranges of positions found in a sorted set of appends by time;
//   - Stats reads counters that the appends keep, never a scan.
//
// Every key starts with the hash tag "{Prefix}:", so a store lives in one slot of a Redis
// Cluster: it scales up, not out, and the whole store must fit in one server's memory.
//
// # Durability
//
// An acknowledged append is as durable as the server's append-only file makes it. Redis must
// run with appendonly yes and maxmemory-policy noeviction (a store of record must refuse writes
// when full, never drop keys); appendfsync decides what a crash of the machine loses:
//   - always: the AOF is fsynced before the reply (writes of one event-loop turn share a
//     fsync); an acknowledged append survives a power loss, as a PostgreSQL commit does. This
//     is what scripts/stack.sh runs and what production should run;
//   - everysec (Redis's default): fsync once a second in the background; a crash of the
//     process loses nothing, but a power loss or kernel crash loses up to about two seconds of
//     acknowledged appends — and a relay may already have published them to Kafka;
//   - no: the kernel flushes when it likes (often 30 s); a power loss loses that much.
//
// A replica does not change this: replication is asynchronous, and a failover can lose the
// appends the replica had not received (WAIT narrows the window, it does not close it).
//
// # What it does not do (yet)
//
// It has no outbox: nothing appended here reaches the relay or Kafka, and the services do not
// accept EVENT_STORE_TYPE=redis. It has no snapshot pruning and no
// metrics. A read of all events filtered by type reads each type's index, but Since and Until
// only narrow the range of positions.
//
// # The outbox, as planned
//
// The append script will also add the append to an outbox: a Redis stream
// "{Prefix}:outbox" (XADD with the append's first position as its id, "<position>-0", so that
// ids increase with positions and are never reused), holding the stream id and the range of
// positions. The relay's relay.Outbox on this store will read it in order (XRANGE from the
// last settled id; a single publisher elected by a lease key, SET NX PX, renewed while it
// runs), publish the events of each entry to Kafka, and settle an entry (XDEL, with an INCRBY
// of the published count, in one script) only after Kafka acknowledged it: at least once, in
// per-stream order, never skipping an entry. A stream the relay cannot publish is held (a hash
// of holds by stream id), with the operator's Retry and Skip as in pkg/events/postgres.
//
// # Idempotency keys
//
// An append that carries AppendOptions.Idempotency records its key in its own script, with
// the request's hash, the status and where the append landed (versions, positions, recording
// time, event ids): the key and the events are written together or not at all. The key is the
// script's first check, so an append whose key was recorded before writes nothing and fails
// with events.ErrIdempotencyKeyTaken, even if its stream moved on since; of concurrent appends
// with one key, one wins. LookupIdempotency reads the record back; PruneIdempotency deletes
// those older than a ttl by the server's clock, through a sorted set of keys by recording
// time, a thousand at a time.
//
// It must never write part of an append, take a global position that no event keeps, or
// change or delete a recorded event.
package redis

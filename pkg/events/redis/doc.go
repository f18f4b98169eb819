// Package redis is the Redis implementation of the event store: appends under optimistic
// concurrency, paged and temporal reads, statistics and snapshots, behind the same events.Store
// interface as pkg/events/postgres and checked by the same contract suite (eventstest). The
// services run on it when EVENT_STORE_TYPE=redis.
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
// # The outbox
//
// The append's script also enters the append in the outbox ("firstPosition:lastPosition:
// stream" in a sorted set by position, and in its stream's own set by version), in the same
// atomic write as its events, and PUBLISHes on the channel "{Prefix}:appended". Outbox
// implements relay.Outbox, and the Session it hands out outbox.Session:
//   - Lead elects one publisher among the relays: a lease key, SET NX PX with a random token,
//     that the session renews every third of Options.LeaseTTL (5 s) with a script that checks
//     the token. Every settlement runs in one script that checks the token before it writes:
//     that is the fencing; a relay whose lease expired (paused, cut from the server) or was
//     taken settles nothing, gets ErrLeaseLost, and its session is Lost, as it is once no
//     renewal succeeded for a whole LeaseTTL. A relay that vanishes without closing its
//     session is replaced within LeaseTTL.
//   - Pending reads the oldest appends first, whole, within the event and byte budgets, with
//     their events, their stream's Head (the first version of its oldest append in the outbox)
//     and whether it is held, sorted by stream and version. An append enters the outbox when
//     it is written, and positions are handed out in that order, so nothing is skipped or read
//     out of a stream's order; it leaves only when a settlement says it was published (or an
//     operator skips it): at least once.
//   - Settle deletes the published appends, records holds (a hash by stream) and keeps the
//     held appends and those behind them in a set that reads pass over, only while their
//     stream's hold exists (an append to a held stream is read once, with Held set, and
//     settled behind it). Holds are keys like any other, so they survive restarts. Reconcile returns the appends of a hold
//     deleted by hand; Holds, Retry, RetryAll and Skip are the operator's, with the PostgreSQL
//     store's signatures; a skipped append is kept in "{Prefix}:outbox-dead" with the hold's
//     reason, who skipped it and why.
//   - Listen subscribes to the channel: any append, from any process, wakes the relay, and
//     Options.OnAppend wakes one in the same process directly. A message lost while the
//     subscription was down is covered by the relay's poll.
//
// Stats count every appended event whether published or not: the counters are kept by the
// appends, never by the outbox.
//
// # What it does not do (yet)
//
// It has no snapshot pruning and no metrics. A read of all events filtered by type reads each
// type's index, but Since and Until only narrow the range of positions.
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

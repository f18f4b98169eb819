// Package consume is the consumer-group runtime of Annals on kafka-go: batches processed in
// parallel lanes, commits up to the offset below which everything has finished, bounded
// retries, dead letters with parked streams, middleware, and PostgreSQL helpers (a unit of work
// per transaction, an inbox) for exactly-once effects.
//
// # What it promises
//
//   - A stream's events (one key) are handled one at a time and in partition order: a batch
//     is split into lanes by key, and a lane runs its messages in order. Different streams run
//     in parallel (Config.Lanes); with a Unit, a small batch takes fewer lanes, so that it is
//     not one transaction per message (Config.MinPerLane).
//   - Nothing is committed past a message that has not finished: after each batch, each
//     partition's offset moves to just after the last message below which every message
//     finished (handled, or written to the dead-letter topic). Those offsets add up and are
//     committed at most every Config.CommitInterval (1 s; negative: after every batch) while
//     messages keep coming, at once when none is waiting any more (so that the group's lag
//     reaches zero soon after traffic stops), and before the member gives up its partitions
//     (a rebalance, a stall, Run's end): a clean stop or a rebalance leaves nothing it
//     processed uncommitted. A commit goes to the broker while the next batch is processed,
//     one commit at a time and in order. Delivery is at least once: after a crash, at most
//     about CommitInterval of records are delivered again, which an Inbox skips.
//   - A message that keeps failing is retried Config.Attempts times with exponential backoff,
//     then written to the dead-letter topic with its reason; its stream is blocked (BlockStore),
//     so the stream's later messages go to the dead-letter topic too ("parked") instead of
//     being applied out of order. Other streams keep flowing. A record of the relay's that
//     cannot be decoded is dead-lettered at once, and blocks its stream as a failing one does
//     (one that is not known to be the relay's is quarantined instead: see below).
//   - A blocked stream stays blocked until an operator settles it (BlockTable, `annals dlq`):
//     a release lets its later events through; a redrive has the member that owns its
//     partition apply its dead-lettered and parked events again, from the dead-letter topic,
//     in order and each once, moving the block past each, and then release it. A running
//     consumer reads its group's blocks again every Config.BlockRefresh, between batches, so
//     neither waits for a restart.
//   - With Config.StopOnFailure a failing event is not dead-lettered: its partition stops at it
//     (a stopped Block), nothing of the partition from it on is handled or committed, and an
//     operator's release has the member read the partition again from it and try it once more.
//     Config.Sequential commits before the next batch starts; Config.Interval handles
//     messages in periodic rounds instead of as they arrive.
//   - Only records the relay published are events: with a Verifier (NewDecoder), a record
//     without a valid signature is quarantined, written to the dead-letter topic with its
//     reason and counted (annals_consumer_quarantined_total), without blocking its key's
//     stream, since anyone who can write to the topics can write it under any key. A record
//     that cannot be decoded blocks its stream only when it is known to be the relay's (a
//     genuine event must not be skipped); otherwise it is quarantined too.
//   - A record written with a schema version the consumer's catalog lacks (a writer
//     deployed first) is read through the catalog table (NewDecoder's Lookup) as the
//     consumer's version of its type; one the table lacks too waits for the writer's
//     registration, as for a dependency.
//   - A dependency's failure is never the message's fault. An error marked with Unavailable
//     (PostgresUnit and PostgresError mark every failure of the database that is not the
//     statement's: the server down, a deadlock, a serialization failure, a cancelled
//     statement, a read-only server after a failover, a full disk) never sends a message to
//     the dead-letter topic and is not counted against its attempts: processing stops, what
//     finished is committed, and it starts again from the committed offsets after a pause
//     that doubles from Config.Backoff up to Config.MaxBackoff, for as long as the failure
//     lasts (annals_consumer_stalls_total counts the pauses). Only a fault of the message
//     itself is poison: an error marked Permanent, a record that cannot be decoded, or an
//     ordinary error that outlasts Config.Attempts.
//   - A broker that refuses the consumer itself is no dependency that comes back by waiting:
//     its credentials or certificate (Config.Security, pkg/kafkasec), or an ACL it lacks
//     (Describe or Read on a topic, Read on the group, Write on the dead-letter topic). Run
//     then stops as it does when its context ends, and returns the refusal, naming what is
//     missing; no message is dead-lettered or blocked for it.
//   - On a rebalance or when Run's context ends, the messages already started finish (within
//     Config.DrainTimeout), no other message of the batch starts, and what finished is
//     committed while the member still owns its partitions; messages fetched but not started
//     are dropped. The member then rejoins, or leaves the group. The member sends no heartbeat
//     meanwhile, so Config checks that the drain ends before the broker's session timeout:
//     an evicted member would still work on partitions that another member already handles.
//
// # Why generations and not the Reader
//
// kafka-go's group Reader hides rebalances: after one it may still hand out messages of
// partitions the member lost, and commit them under the new generation. The runtime uses
// kafka-go's ConsumerGroup instead. Each generation says which partitions the member owns; the
// runtime reads them with one partition reader each, commits through the generation (the
// broker refuses commits of a generation that has ended), and throws away everything it
// fetched when the generation ends. Nothing read under one generation is processed or
// committed under the next.
//
// # Tracing
//
// Each message is handled in a process span (Config.Tracing) from its fetch to the end of its
// handling, a child of the span whose W3C trace context its record carries (the relay's
// publish span) or, failing that, its event's metadata (the append's): the handler's context
// carries it, so that the handler's own spans and log lines join the trace of the command that
// recorded the event. A BatchHandler links its work to its messages' spans (Links). With no
// OpenTelemetry SDK installed the spans are no-ops.
//
// # Exactly-once effects
//
// With Config.Unit = PostgresUnit(pool), each lane's share of a batch runs in one transaction
// (a Handler reaches it with Tx). Inbox.Middleware records each event id in that transaction
// and skips events recorded before, so an effect in the same database happens once however
// often its event is delivered. A Handler that also implements BatchHandler takes a lane's
// messages at once; when that fails, each message runs again on its own.
package consume

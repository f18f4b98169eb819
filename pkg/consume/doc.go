// Package consume is the consumer-group runtime of Annals on kafka-go: batches processed in
// parallel lanes, commits up to the offset below which everything has finished, bounded
// retries, dead letters with parked streams, middleware, and PostgreSQL helpers (a unit of work
// per transaction, an inbox) for exactly-once effects.
//
// # What it promises
//
//   - A stream's events (one key) are handled one at a time and in partition order: a batch
//     is split into lanes by key, and a lane runs its messages in order. Different streams run
//     in parallel (Config.Lanes).
//   - Nothing is committed past a message that has not finished: after each batch, each
//     partition's offset moves to just after the last message below which every message
//     finished (handled, or written to the dead-letter topic). That commit goes to the broker
//     while the next batch is processed, one commit at a time and in order. Delivery is at
//     least once.
//   - A message that keeps failing is retried Config.Attempts times with exponential backoff,
//     then written to the dead-letter topic with its reason; its stream is blocked (BlockStore),
//     so the stream's later messages go to the dead-letter topic too ("parked") instead of
//     being applied out of order. Other streams keep flowing. A record that cannot be decoded
//     is dead-lettered at once.
//   - A blocked stream stays blocked until an operator settles it (BlockTable, `annals dlq`):
//     a release lets its later events through; a redrive has the member that owns its
//     partition apply its dead-lettered and parked events again, from the dead-letter topic,
//     in order and each once, moving the block past each, and then release it. A running
//     consumer reads its group's blocks again every Config.BlockRefresh, between batches, so
//     neither waits for a restart.
//   - A dependency that is unavailable (errors marked with Unavailable, which PostgresUnit does
//     for a database that is down) never sends a message to the dead-letter topic: processing
//     stops, what finished is committed, and it starts again from the committed offsets.
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
// # Exactly-once effects
//
// With Config.Unit = PostgresUnit(pool), each lane's share of a batch runs in one transaction
// (a Handler reaches it with Tx). Inbox.Middleware records each event id in that transaction
// and skips events recorded before, so an effect in the same database happens once however
// often its event is delivered. A Handler that also implements BatchHandler takes a lane's
// messages at once; when that fails, each message runs again on its own.
package consume

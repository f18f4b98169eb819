// Package bench measures the whole pipeline against the physical limits of the servers it
// runs on, in one run (`annals bench`, `make bench`). The workloads that the Go benchmarks of
// the library and the services run too (appends, the mix and its fill, the relay's and the
// consumers' drains) are internal/benchkit's, so that both measure the same thing.
//
// A run measures, in this order:
//
//   - pgbench with one INSERT of an event-sized row per transaction, at 1, 8 and 32 clients;
//   - pgbench on the event store's own table (PGBenchEventRows): one event row per
//     transaction, and 100 rows of a new stream per transaction, by 1 and 8 clients, whose
//     ratio of events/s is what a batch gains in PostgreSQL itself;
//   - the event store's appends through the library (Appends): one event and 100 events per
//     append, by 1 and 8 appenders;
//   - the four services started as processes in a deployment of their own (a schema and a
//     topic prefix, and so groups): commands over HTTP with internal/load's mix in closed
//     loops of 1, 8 and 32 clients, then the median size of the records the relay published
//     for them, then steady command rates of 20 commands/s and of 25%, 50% and 75% of the
//     best closed-loop rate, every command read back from the projector with read-your-writes
//     (RunEndToEnd), then 150 commands/s with the processor time of every program of the
//     pipeline from /proc, PostgreSQL and the broker included, per command (CostRun), set
//     against pgbench's processor time per transaction;
//   - Kafka's ProducerPerformance (acks=all, records of that median size),
//     ConsumerPerformance over its records, and EndToEndLatency, from the broker's own jars;
//   - a relay started cold on an outbox filled with a realistic mix (Mix, Fill, RelayDrain),
//     then the runtime with a no-op handler, the projector and the auditor, each draining
//     the topics the relay filled with a fresh group (DrainNoOp, DrainProjector, and
//     services/auditor/auditbench's Drain);
//   - the notifier draining a smaller mix into the mail server, beside plain SMTP sessions
//     sending as many messages of the same size (DrainNotifier, SMTPSend);
//   - when the run has their addresses, the Redis and MongoDB stores: each server's own write
//     rate (RedisBenchmark, MongoInserts) at 1 and 8 clients, the store's single-event appends
//     at 1 and 8 appenders, and the relay's drain of its filled outbox (StoreRun).
//
// Each figure is set against its baseline (Figure.Ratio) and, for some, a target; Results
// holds them all with the raw measurements and the curves of latency against throughput.
//
// The package measures what the services do, as they are configured: it never changes how
// they work to make a figure better. It creates only schemas, topics, groups, Redis keys and
// MongoDB databases whose names start with bench, and removes them at the end of a run.
//
// It sits under cmd/annals because it imports the services (the projector's, the auditor's
// and the notifier's consumers) as well as the library: only the annals command and the
// stack's test of `make bench-quick` import it, and nothing in pkg/, internal/ or services/
// may. What the library's benchmarks share with it is internal/benchkit's.
package bench

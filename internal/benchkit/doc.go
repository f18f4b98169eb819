// Package benchkit holds the workloads and measurements that `annals bench` (cmd/annals/bench)
// and the Go benchmarks of the library and the services share, so that both measure the same
// thing, with the same code:
//
//   - closed-loop runs and their latency percentiles (RunClosed, Throughput, Summarise);
//   - the event store's appends through the library (Appends, AppendPayload);
//   - the reference domain's realistic mix of users and their orders, and the outbox filled
//     with it (Mix, Fill, Count, Emails);
//   - a relay's drain of a filled outbox, and the size of the records it published
//     (RelayDrain, WaitOutboxDrained, RecordSizes);
//   - the drain of filled topics by a fresh consumer group (DrainWith, DrainNoOp).
//
// It stands on the library alone (and the reference domain's payloads, internal/domain), so
// that the library's own benchmarks depend on nothing above it. It must never import
// services/ or cmd/: a service's own drain is DrainWith with that service's consumer, kept
// beside the service (services/auditor/auditbench) or in the harness (cmd/annals/bench). It
// measures what it is given as it is configured, and never changes how it works to make a
// figure better.
package benchkit

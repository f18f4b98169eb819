// Package relay publishes the transactional outbox to Kafka, in commit-safe order and with
// per-stream order kept across retries, failed batches and several relay instances.
//
// # Who owns what
//
// The relay owns publishing: electing one publisher, encoding (in parallel for large rounds),
// per-stream order, the byte budgets of a read and of a produce batch, each topic's size
// limit (read from the broker), the partitioner, which failures are an append's own (it holds
// the append's stream, with the reason) and which are a dependency's (it pauses and retries),
// and its metrics. It owns no table. The outbox tables belong to the event store
// that writes them (pkg/events/postgres): the relay reaches them only through Outbox, which
// it defines here and the store implements, and holds no SQL. The record's header names and
// topic names are those of pkg/kafkawire; with Config.Signer every record also carries a
// signature (pkg/signing), so that consumers can refuse records the relay did not publish.
// As it sends a record it adds, outside the signature, when it sent it (published-at) and,
// with Config.Tracing, the trace context of the append's publish span, a child of the span
// whose traceparent the append's events carry in their metadata (pkg/hops).
//
// Health says what a relay is doing (starting, standing by, publishing, failing, and why), for
// the health endpoints of the programs that run it.
//
// It connects to the brokers with Config.Security (pkg/kafkasec: TLS, SASL). A broker that
// refuses the relay itself, its credentials, its certificate, or an ACL it lacks (Write or
// Describe on a topic), is no dependency that comes back by waiting: Run stops and returns
// the refusal, naming what is missing, and no stream is held for it.
//
// It must never skip an outbox row, never publish a stream's event before an earlier one, never
// let a held stream hold up another, and never hold a stream for a dependency's failure.
package relay

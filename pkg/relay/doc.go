// Package relay publishes the transactional outbox to Kafka, in commit-safe order and with
// per-stream order kept across retries, failed batches and several relay instances.
//
// # Who owns what
//
// The relay owns publishing: electing one publisher, encoding (in parallel for large rounds),
// per-stream order, the byte budget of a produce batch, the partitioner, what to set aside
// and why, and its metrics. It owns no table. The outbox tables belong to the event store
// that writes them (pkg/events/postgres): the relay reaches them only through Outbox, which
// it defines here and the store implements, and holds no SQL. The record's header names and
// topic names are those of pkg/kafkawire.
//
// Health says what a relay is doing (starting, standing by, publishing, failing, and why), for
// the health endpoints of the programs that run it.
//
// It must never skip an outbox row, and never publish a stream's event before an earlier one.
package relay

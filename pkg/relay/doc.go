// Package relay publishes the transactional outbox to Kafka, in commit-safe order and with
// per-stream order kept across retries, failed batches and several relay instances.
//
// It must never skip an outbox row, and never publish a stream's event before an earlier one.
package relay

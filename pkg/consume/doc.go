// Package consume is the consumer-group runtime on kafka-go: batches processed in parallel
// lanes, commits up to the highest offset below which everything has finished, bounded
// retries, dead letters, middleware and an inbox helper for exactly-once effects.
//
// It must never commit an offset whose message, or any message below it, has not finished.
package consume

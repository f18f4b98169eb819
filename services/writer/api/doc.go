// Package api is the writer's HTTP command API: it turns requests about users and orders into
// domain commands, appends the events they record to the event store (Store: PostgreSQL,
// Redis or MongoDB) under optimistic concurrency, and serves the store's history (aggregate state at a version or a
// time, streams, the all-stream, statistics) and, through pkg/feed, the all-stream live as
// Server-Sent Events (GET /v1/subscribe).
//
// Every command follows the same path (execute): strict decoding and validation, an
// Idempotency-Key look-up, load, an If-Match check, the domain command, and a save whose
// append carries the idempotency key, if any, for the store to record with the events
// (events.IdempotencyStore); a replay renders the response again from that record.
// Conflicts without If-Match are retried a few times with a fresh load.
//
// Handlers return their errors to the services' one error table (httpx.Errors), with the
// writer's own rules (errorRules: validation, conflicts, rules of the domain). The package
// never writes a request body, an idempotency key's response or a secret into a log line,
// never appends anything for a request it refuses, and never keeps more for a subscriber of the
// live feed than its buffer (FEED_BUFFER): one that falls further behind is dropped.
package api

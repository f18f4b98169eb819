// Package postgres is the PostgreSQL implementation of the event store: appends under
// optimistic concurrency, paged reads, snapshots and the transactional outbox rows, with its
// schema as embedded migrations.
//
// It must never commit events without their outbox row, nor an outbox row without its events.
package postgres

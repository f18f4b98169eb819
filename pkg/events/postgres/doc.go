// Package postgres is the PostgreSQL implementation of the event store: appends under
// optimistic concurrency, paged reads, snapshots, statistics and the transactional outbox,
// with its schema as embedded migrations.
//
// # Who owns what
//
// This package owns every table of the event store and every statement on them. That
// includes the outbox: appends write its rows (Store), and the relay reads, settles and
// measures them only through Outbox, which implements relay.Outbox (commit-safe reads within
// event and byte budgets, the lock that elects one publisher, the planner settings of the
// publishing session, the holds of the streams the relay cannot publish), and the operator
// releases or skips held appends through Outbox too (Holds, Retry, Skip; a skipped append goes
// to annals_outbox_dead with who skipped it and why). The statistics are the store's too: Stats adds the
// counters that settling an outbox row keeps, in the same statement, to what the outbox still
// holds, so they are right whoever settles the rows, and while nobody does.
//
// The all-stream (ReadAll, Head) is commit-safe: every append holds a fence, a shared advisory
// lock that names a position below its own, until it ends, and a read stops below the lowest
// fence (all.go). So a reader that pages forward never skips an append that commits late.
//
// It must never commit events without their outbox row, nor an outbox row without its events,
// nor remove an outbox row without counting its events, nor keep a row behind a hold that does
// not exist, nor insert an event without its fence, nor let ReadAll return a position at or
// below which an append is still open.
package postgres

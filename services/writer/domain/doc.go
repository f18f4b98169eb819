// Package domain holds the writer's aggregates, users and orders: their events, their state as
// rebuilt from those events, and the commands that check the business rules before recording
// new events.
//
// It is pure: no database, no HTTP, no clock. Commands take an *events.Aggregate loaded by an
// events.Repository and call Aggregate.Record; the caller saves. A command that breaks a rule
// returns a *RuleError and records nothing; input that is malformed (an empty name, a negative
// price) gives a *ValidationError. Apply functions must stay deterministic and never look at the
// envelope's position, id or time, because the repository snapshots the in-memory state.
//
// Money is integer cents (int64) with overflow checks, never floats.
package domain

// Package domain is the reference domain, users and orders, and the one home of its event
// contract: the event types and their payloads, the Avro schemas of those payloads (avro/, the
// Catalog), the life-cycle rules every reader of the events shares (an order's total, which
// item an ItemRemoved takes out), and the aggregates whose commands record the events. The
// writer records the events; the projector, the notifier and the auditor read them; none of
// them defines an event type, a payload or a rule of its own.
//
// It is pure: no database, no HTTP, no clock. Commands take an *events.Aggregate loaded by an
// events.Repository and call Aggregate.Record; the caller saves. A command that breaks a rule
// returns a *RuleError and records nothing; input that is malformed (an empty name, a negative
// price) gives a *ValidationError. Apply functions must stay deterministic and never look at the
// envelope's position, id or time, because the repository snapshots the in-memory state.
//
// Money is integer cents (int64) with overflow checks, never floats. The package never imports
// a service: the services import it.
package domain

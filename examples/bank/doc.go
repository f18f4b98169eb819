// Package bank is a second domain built only on the public library (pkg/...): bank accounts
// that open, take deposits and withdrawals within an overdraft limit, and close at a zero
// balance. It is the one home of the domain's event contract (the event types and their
// payloads, their Avro schemas in avro/ and the Catalog made of them) and of the account
// aggregate, whose commands check the rules and record the events.
//
// It is pure: no database, no HTTP, no clock. Commands take an *events.Aggregate loaded by an
// events.Repository and call Aggregate.Record; the caller saves. A command that the account's
// state does not allow returns a *RuleError (an overdraft also an *OverdraftError) and records
// nothing; malformed input gives a *ValidationError. Money is integer cents, never floats.
//
// The example's packages must never import anything under the module's internal/ or services/
// folders (TestImports checks it): they show what a team outside this repository can build.
package bank

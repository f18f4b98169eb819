// Package events holds the core types of the event store: the event envelope, expected-version
// modes, the aggregate and repository contracts, the store and reader interfaces, and their
// typed errors. pkg/events/postgres is the PostgreSQL store, pkg/events/inmem a store in
// memory for tests and examples, and pkg/events/eventstest the contract suite that every store
// passes.
//
// It depends on the standard library only (and a UUID package): never on pgx, kafka-go or any
// service, so that every implementation and every consumer can share it.
package events

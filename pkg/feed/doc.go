// Package feed follows the all-stream as it grows and hands each subscriber the events it asks
// for (by type and category), in position order, as they commit: the live side of what
// events.AllReader reads in pages. The writer's GET /v1/subscribe streams it as Server-Sent
// Events.
//
// # How it follows the store
//
// One poller per Feed reads the store (events.AllReader, whose reads are commit-safe, so that
// following it never skips an event that commits late) from the last position it handed out,
// a page after another, every Config.Poll or as soon as Wake is called (the store's OnAppend
// hook, so that events appended in the same process go out at once). It fans each page out in
// memory to every subscriber: one read per round whatever the number of subscribers. The
// poller runs only while someone is subscribed. A subscriber that starts from an earlier
// position reads its way up on its own first, a page at a time, then joins the fan-out.
//
// A read that fails (the store is down) is logged, counted, and tried again after a pause that
// doubles up to 30 seconds; the subscribers stay subscribed and receive what they missed once the
// store is back.
//
// # Bounds
//
// Each subscriber has a buffer of Config.Buffer events. The fan-out never waits for one: a
// subscriber whose buffer is full is dropped (its channel is closed and Err is ErrSlow), and
// may subscribe again after the last position it received. At most Config.MaxSubscribers
// subscriptions run at once; Subscribe refuses more with ErrTooManySubscribers. So memory stays
// within a page and a buffer per subscriber, whatever the clients do.
//
// It depends on pkg/events, the standard library and Prometheus's client only: never on a store
// implementation, on HTTP or on a service. It must never hand one subscriber an event twice or
// out of position order, never skip an event that matches a subscriber's filter, and never let a
// subscriber's backlog grow past its buffer or hold up the others.
package feed

// Package relaytest is the contract of an event store's transactional outbox as a test suite:
// what the relay (pkg/relay) needs of a relay.Outbox, its sessions and its operator, checked
// against the records the relay publishes to a real Kafka. Run runs it against any store's
// outbox (the PostgreSQL one, and those other teams write), the way eventstest.TestStore runs
// the contract of events.Store.
//
// Call it from a test of the store's package with a Harness whose New returns a fresh, empty,
// isolated store for one subtest, and the brokers to publish to:
//
//	func TestOutbox_Contract(t *testing.T) {
//		relaytest.Run(t, relaytest.Harness{
//			Brokers: testenv.KafkaBrokers(t),
//			New: func(t *testing.T) relaytest.Subject {
//				s := newStore(t)
//				return relaytest.Subject{Store: s, Outbox: s.Outbox(), Operator: s.Outbox()}
//			},
//		})
//	}
//
// Each subtest creates its own topics (a prefix of its own) and deletes them when it ends.
//
// A store's own tests of its outbox, beside Run, can use the suite's helpers: Start runs a
// relay on an outbox, AppendConcurrently appends from many goroutines at once, Published and
// Consume read back the records the relay published, and ByStream and CheckOrder check them.
//
// It imports pkg/relay, pkg/events, pkg/events/outbox, pkg/kafkawire, kafka-go and the
// Prometheus client only, and must never import a store implementation or a test environment,
// so that anyone can run it against their own outbox. It is test code: nothing outside a test
// may call it.
package relaytest

import (
	"context"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/relay"
)

// Operator is the operator's side of held streams, as the suite uses it (outbox.Operator).
type Operator = outbox.Operator

// Subject is one fresh, empty store under test, used by one subtest alone.
type Subject struct {
	// Store appends the events the relay publishes, and reads them back to compare.
	Store events.Store
	// Outbox is the store's outbox, as the relay reads and settles it.
	Outbox relay.Outbox
	// Operator lists, retries and skips the outbox's held streams.
	Operator Operator
	// LateAppend appends evs to streamID in a transaction that takes its place in the store's
	// order now (global positions below those of every append made after it) but that
	// readers see only once commit is called. nil: the store has no such state (every append
	// is visible in the order of its positions), and the test of it is skipped.
	LateAppend func(ctx context.Context, streamID string, evs []events.Event) (commit func() error, err error)
	// Skipped lists the appends an operator skipped, with who skipped them and why. nil: the
	// store keeps no such record the suite can read, and the suite checks only that a skip
	// needs both.
	Skipped func(ctx context.Context) ([]SkippedAppend, error)
}

// SkippedAppend is an append an operator skipped (Operator.Skip), as the store records it.
type SkippedAppend struct {
	StreamID     string
	FirstVersion int64
	Reason       string // the hold's reason
	By, Why      string
}

// Harness is how Run reaches a store and the brokers.
type Harness struct {
	// New returns a fresh, empty, isolated store for one subtest; it registers its own
	// cleanup on t.
	New func(t *testing.T) Subject
	// Brokers are the addresses of a real Kafka the subtests create their topics on.
	Brokers []string
	// Small runs the long subtests (PublishesEveryEvent, OnePublisherAtATime, AbruptStop,
	// ReadByteBudget) with the fewer streams and appends they have under -short, for a store
	// too slow to take their full size in every test run. Every check stays; fewer events go
	// through.
	Small bool
}

// Run runs the contract of an outbox against the stores h.New returns, each subtest on its
// own store and topics, publishing with relay.Relay to h.Brokers and reading the records back.
//
// The contract holds that, through the relay:
//   - every event appended, by concurrent appenders on many streams, is published once, each
//     stream's in version order, each record naming its stored event (id, version, global
//     position), and nothing else is; the outbox is then empty (its Backlog says so);
//   - an append that takes its place and commits later (Subject.LateAppend) is published
//     once it commits, and appends committed meanwhile on other streams are not held back;
//   - one session at a time leads for a lock key; a Lead that waits returns its context's
//     error when that ends first;
//   - of two relays sharing the outbox, one publishes at a time, and nothing is repeated; when
//     the leader's context ends while writers append, the other takes over with nothing lost;
//   - a relay stopped abruptly mid-drain (after sending a round, before settling it; or at any
//     moment), without waiting for it, followed at once by a new one, loses nothing, and
//     repeats only what the first had sent but not settled: each stream steps back at most
//     once, and no more than one read's events are repeated;
//   - an append the encoder refuses holds its stream only, with its reason, while the others
//     flow; Operator.Holds lists it with the appends waiting; Retry publishes it and those
//     behind it in order once the encoder takes it; Skip gives up exactly the named append,
//     needs who and why, and records them; the store's statistics count every event once;
//   - an append is held whole: none of its events is published when one of them is refused;
//     and a round of many appends, some refused, holds each of their streams and publishes
//     every other append;
//   - no read (Session.Pending) holds more event data than the relay's MaxReadBytes, except
//     a single transaction larger than it alone, which is still read and published;
//   - the session's Backlog counts the appends waiting, held and not, and their age.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || len(h.Brokers) == 0 {
		t.Fatal("relaytest: the harness needs New and Brokers")
	}
	for _, c := range []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"PublishesEveryEvent", testPublishesEveryEvent},
		{"Lead", testLead},
		{"LateAppend", testLateAppend},
		{"OnePublisherAtATime", testOnePublisherAtATime},
		{"AbruptStop", testAbruptStop},
		{"HeldStream", testHeldStream},
		{"HoldsWholeAppend", testHoldsWholeAppend},
		{"HoldsInALargeRound", testHoldsInALargeRound},
		{"ReadByteBudget", testReadByteBudget},
		{"Backlog", testBacklog},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newEnv(t, h)) })
	}
}

// within is how long the suite waits for anything the relay does.
const within = time.Minute

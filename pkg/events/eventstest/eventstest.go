// Package eventstest is the contract of events.Store as a test suite. TestStore runs it against
// any implementation (the PostgreSQL store, the in-memory store, and stores other teams write),
// so that code built on pkg/events behaves the same on each of them.
//
// Call it from a test of the store's package with a function that returns a fresh, empty
// store:
//
//	func TestStore_Contract(t *testing.T) {
//		eventstest.TestStore(t, func(t *testing.T) events.Store { return inmem.New(inmem.Options{}) })
//	}
//
// It imports pkg/events, the standard library and uuid only, and must never import a store
// implementation or a test environment, so that anyone can run it against their own store. It
// is test code: nothing outside a test may call it.
package eventstest

import (
	"context"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// Pruner is a store that deletes old snapshots (the PostgreSQL store's PruneSnapshots,
// SNAPSHOT_RETENTION_PERIOD). TestStore checks it when the store has it.
type Pruner interface {
	// PruneSnapshots deletes the snapshots created more than retention ago, except the newest
	// of each stream (the highest version, then state-schema version), and returns how many it
	// deleted.
	PruneSnapshots(ctx context.Context, retention time.Duration) (int64, error)
}

// SnapshotDeleter is a store that deletes every snapshot of a stream, of every state-schema
// version: after the erasure of personal data, no state taken before it may be loaded again.
// TestStore checks it when the store has it.
type SnapshotDeleter interface {
	// DeleteSnapshots deletes the stream's snapshots and returns how many it deleted.
	DeleteSnapshots(ctx context.Context, streamID string) (int64, error)
}

// TestStore runs the contract of events.Store against the stores that newStore returns: each
// call must return a fresh, empty store, which the subtest that asked for it uses alone.
//
// Beyond what the types of pkg/events say, the contract holds that:
//   - an append is all or nothing, and a refused one (bad input, a version conflict, a
//     duplicate event id) changes nothing and uses up no version;
//   - an expected version that does not hold gives a *events.VersionConflictError with the
//     expectation and the stream's actual version (-1 for none); of concurrent appends that
//     expect the same version, exactly one wins;
//   - event ids are unique across the store: an event id already recorded, or repeated within
//     an append, is ErrInvalid (or a version conflict, when the expected version does not
//     hold either); a missing id is filled with a UUIDv7;
//   - bad input (a stream id that ValidateStreamID refuses, no events, an event type that is
//     empty, longer than 200 bytes or not UTF-8 text without NUL, data that is not JSON, a
//     correlation or causation id that is not UTF-8 text without NUL, a read limit below 1)
//     is ErrInvalid;
//   - data is kept byte for byte; metadata reads back as a map, empty but never nil; recording
//     times are UTC; global positions are above 0 and increase with every event;
//   - the all-stream is commit-safe (events.AllReader): a reader that pages forward through
//     it while others append reads every event exactly once; the head is 0 before the first
//     append and, with no append under way, at least the last position, with nothing after
//     it;
//   - Stats returns a non-nil EventsByType and RecentEvents;
//   - a cancelled context makes every method fail with an error that wraps the context's.
func TestStore(t *testing.T, newStore func(t *testing.T) events.Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s events.Store)
	}{
		{"Append", testAppend},
		{"ExpectedVersion", testExpectedVersion},
		{"ConcurrentExpectedVersion", testConcurrentExpectedVersion},
		{"ConcurrentAppends", testConcurrentAppends},
		{"EventIDs", testEventIDs},
		{"ErrInvalid", testInvalidInput},
		{"CancelledContext", testCancelledContext},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"ReadAllWhileAppending", testReadAllWhileAppending},
		{"Head", testHead},
		{"StreamInfo", testStreamInfo},
		{"Stats", testStats},
		{"VersionAt", testVersionAt},
		{"Snapshots", testSnapshots},
		{"PruneSnapshots", testPruneSnapshots},
		{"DeleteSnapshots", testDeleteSnapshots},
		{"Repository", testRepository},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t)) })
	}
}

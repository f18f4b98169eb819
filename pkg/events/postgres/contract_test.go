package postgres_test

import (
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// TestStore_Contract runs the contract of events.Store, each part on a fresh schema.
func TestStore_Contract(t *testing.T) {
	eventstest.TestStore(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, postgres.Options{})
		return s
	})
}

func TestStore_ContractMaxEventsPerStream(t *testing.T) {
	eventstest.TestMaxEventsPerStream(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, postgres.Options{MaxEventsPerStream: max})
		return s
	})
}

func TestStore_ContractMaxEventBytes(t *testing.T) {
	eventstest.TestMaxEventBytes(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, postgres.Options{MaxEventBytes: max})
		return s
	})
}

func TestStore_ContractIdempotency(t *testing.T) {
	eventstest.TestIdempotency(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, postgres.Options{})
		return s
	})
}

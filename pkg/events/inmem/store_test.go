package inmem_test

import (
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/inmem"
)

func TestStore_Contract(t *testing.T) {
	eventstest.TestStore(t, func(*testing.T) events.Store { return inmem.New(inmem.Options{}) })
}

func TestStore_MaxEventsPerStream(t *testing.T) {
	eventstest.TestMaxEventsPerStream(t, func(_ *testing.T, max int) events.Store {
		return inmem.New(inmem.Options{MaxEventsPerStream: max})
	})
}

func TestStore_MaxEventBytes(t *testing.T) {
	eventstest.TestMaxEventBytes(t, func(_ *testing.T, max int) events.Store {
		return inmem.New(inmem.Options{MaxEventBytes: max})
	})
}

func TestStore_ContractIdempotency(t *testing.T) {
	eventstest.TestIdempotency(t, func(*testing.T) events.Store { return inmem.New(inmem.Options{}) })
}

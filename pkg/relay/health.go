package relay

import (
	"sync"
	"time"
)

// HealthState is what a relay is doing, as Health reports it.
type HealthState string

// The states of a relay.
const (
	// Starting: Run has not led yet. Preparing says what holds it back, if anything does.
	Starting HealthState = "starting"
	// Standby: the relay waits for the relay lock, which another relay holds and publishes
	// with.
	Standby HealthState = "standby"
	// Publishing: the relay holds the lock, and its last publish succeeded or found nothing
	// to publish. An idle relay learns that the brokers went away at its next publish.
	Publishing HealthState = "publishing"
	// Failing: the relay's last publish, or its database session, failed; it retries after a
	// pause, and the outbox keeps what it could not publish. A relay that then waits for a
	// lock another relay took stays failing until it publishes again.
	Failing HealthState = "failing"
)

// Health is what a relay reports of its publishing, for health endpoints and metrics.
type Health struct {
	State HealthState `json:"state"`
	// Since is when the relay entered State.
	Since time.Time `json:"since"`
	// Error is why the relay is failing, or what a starting relay waits for.
	Error string `json:"error,omitempty"`
	// LastPublished is when a publish last succeeded (zero: never).
	LastPublished time.Time `json:"last_published,omitzero"`
}

// OK reports whether the relay publishes, or stands by while another one does.
func (h Health) OK() bool { return h.State == Publishing || h.State == Standby }

// health is a relay's Health, updated as it runs.
type health struct {
	mu sync.Mutex
	h  Health
}

func newHealth() *health { return &health{h: Health{State: Starting, Since: time.Now().UTC()}} }

func (s *health) get() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

// set moves to state with err (nil: none), keeping Since when the state stays the same.
func (s *health) set(state HealthState, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h.State != state {
		s.h.State, s.h.Since = state, time.Now().UTC()
	}
	s.h.Error = ""
	if err != nil {
		s.h.Error = err.Error()
	}
}

// waiting is the state of a relay about to wait for the lock: standby, unless its last
// attempt failed.
func (s *health) waiting() {
	s.mu.Lock()
	failing := s.h.State == Failing
	s.mu.Unlock()
	if !failing {
		s.set(Standby, nil)
	}
}

// published records a publish round that succeeded; settled rows mean records went out.
func (s *health) published(settled int) {
	s.set(Publishing, nil)
	if settled > 0 {
		s.mu.Lock()
		s.h.LastPublished = time.Now().UTC()
		s.mu.Unlock()
	}
}

// Health returns what the relay is doing now.
func (r *Relay) Health() Health { return r.health.get() }

// Preparing reports, before Run, why the relay cannot start yet (the topics cannot be
// created, say), or nil once nothing holds it back: Health shows it while the relay is
// starting.
func (r *Relay) Preparing(err error) {
	if r.health.get().State == Starting {
		r.health.set(Starting, err)
	}
}

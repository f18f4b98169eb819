package feed

import (
	"context"
	"slices"

	"github.com/annals-dev/annals/pkg/events"
)

// Filter says where a subscription starts and which events it receives.
type Filter struct {
	// After is the global position to start after: the subscription receives the matching
	// events above it. Now starts at the store's head; 0 starts at the beginning.
	After int64
	// Types keeps the events of these types; empty keeps every type.
	Types []string
	// Category keeps the events of the streams of this category; empty keeps every one.
	Category string
}

// matcher returns whether an event passes the filter.
func (f Filter) matcher() func(*events.Envelope) bool {
	types, category := slices.Clone(f.Types), f.Category
	return func(e *events.Envelope) bool {
		return (len(types) == 0 || slices.Contains(types, e.Type)) && (category == "" || e.Category == category)
	}
}

// Subscription is one subscriber's share of a Feed.
type Subscription struct {
	feed  *Feed
	c     chan events.Envelope
	match func(*events.Envelope) bool
	// cancel ends the subscription's context, which its catch-up reads with.
	cancel context.CancelFunc
	// stopWatch stops watching the subscriber's context.
	stopWatch func() bool
	// after is where the subscription started (Filter.After, Now resolved).
	after int64

	// Guarded by feed.mu.
	pos      int64 // the last position handed out or passed over, once live
	live     bool  // the poller hands it out
	catching bool  // its catch-up runs, and alone sends on c
	ended    bool
	err      error
}

// Events is the channel of the subscription's events, in position order. It is closed when the
// subscription ends; Err then says why. The events are shared with the other subscribers:
// never change their Data or Metadata.
func (s *Subscription) Events() <-chan events.Envelope { return s.c }

// After is the position the subscription started after: Filter.After, or the store's head at
// the start for Now. A subscriber that has received nothing yet resumes from here.
func (s *Subscription) After() int64 { return s.after }

// Err says why the channel of events was closed: ErrSlow, ErrClosed, or the error of the
// subscriber's context; nil while it is open.
func (s *Subscription) Err() error {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.err
}

// Close ends the subscription, as cancelling its context does. Events then closes, with
// context.Canceled as Err.
func (s *Subscription) Close() { s.end(context.Canceled) }

func (s *Subscription) end(err error) {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	s.feed.end(s, err)
}

package mongodb

import (
	"time"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// SetClock makes o read the time from now and call hook at each step of a lease renewal:
// "tick" before it starts, "updated" once the lease document's update returned, "turn" once
// the renewal decided. Call it before o's first Lead.
func SetClock(o *Outbox, now func() time.Time, hook func(step string)) {
	o.now = now
	o.hook = hook
}

// Vanish stops the renewal of the lease that s holds without giving it up, as when the
// relay's process dies.
func Vanish(s outbox.Session) {
	ss := s.(*session)
	ss.stop()
	<-ss.done
}

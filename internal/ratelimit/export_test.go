package ratelimit

import "time"

// SetClock makes l read the time from now.
func (l *Limiter) SetClock(now func() time.Time) { l.now = now }

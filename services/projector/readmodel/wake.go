package readmodel

import "sync"

// wakeups lets read-your-writes waits (waitFor) sleep until this process commits a unit that
// applied an event of their stream, instead of finding out at their next poll. A wait watches
// its stream before it reads, so that a commit landing between its read and its sleep still
// wakes it. Waits whose stream another projector instance applies are not woken here; their
// polls find the change.
type wakeups struct {
	mu      sync.Mutex
	streams map[string]*watch
}

// watch is the waits on one stream: ch is closed by the next commit that applies the stream.
type watch struct {
	ch      chan struct{}
	waiters int
}

// watch returns a channel closed when a unit that applied an event of stream commits, and a
// release to call once the wait no longer needs it.
func (w *wakeups) watch(stream string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.streams == nil {
		w.streams = map[string]*watch{}
	}
	s, ok := w.streams[stream]
	if !ok {
		s = &watch{ch: make(chan struct{})}
		w.streams[stream] = s
	}
	s.waiters++
	return s.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		s.waiters--
		// Woken watches are already gone from the map; a later one may hold the name.
		if s.waiters == 0 && w.streams[stream] == s {
			delete(w.streams, stream)
		}
	}
}

// committed wakes the waits on the streams of a unit that has just committed.
func (w *wakeups) committed(streams []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, stream := range streams {
		if s, ok := w.streams[stream]; ok {
			close(s.ch)
			delete(w.streams, stream)
		}
	}
}

// watching is how many streams have waits (tests).
func (w *wakeups) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.streams)
}

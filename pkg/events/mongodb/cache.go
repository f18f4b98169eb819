package mongodb

import "sync"

// maxCachedHeads bounds the stream heads a Store remembers; past it, it forgets them all
// and reads heads again.
const maxCachedHeads = 100_000

// cache is what a Store remembers of its own appends, so that an append need not look up
// the store's last position and its stream's head every time: on FerretDB, which filters
// and sorts in its own code, each of those reads the whole collection. What it remembers can
// only be behind the database (positions and versions only grow); an append that starts
// from a stale value collides on a unique index and reads the value then.
type cache struct {
	mu       sync.Mutex
	lastPos  int64
	lastSeen bool
	heads    map[string]head
}

// last is the end position of the last append this Store made, if it made one.
func (c *cache) last() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastPos, c.lastSeen
}

// head is the stream's head after this Store's last append to it.
func (c *cache) head(streamID string) (head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.heads[streamID]
	return h, ok
}

// appended remembers an append that landed.
func (c *cache) appended(streamID string, last int64, h head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastPos, c.lastSeen = last, true
	if c.heads == nil || len(c.heads) >= maxCachedHeads {
		c.heads = map[string]head{}
	}
	c.heads[streamID] = h
}

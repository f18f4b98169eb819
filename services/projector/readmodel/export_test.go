package readmodel

// SetPollHook makes every pause of a read-your-writes wait call f first.
func SetPollHook(p *Projection, f func()) { p.pollHook = f }

// SetReadHook makes every query call f between its read of the pointer and its query.
func SetReadHook(p *Projection, f func()) { p.readHook = f }

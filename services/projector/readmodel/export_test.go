package readmodel

import (
	"context"
	"time"

	"github.com/annals-dev/annals/pkg/consume"
)

// SetPollHook makes every pause of a read-your-writes wait call f first.
func SetPollHook(p *Projection, f func()) { p.pollHook = f }

// SetReadHook makes every query call f between its read of the pointer and its query.
func SetReadHook(p *Projection, f func()) { p.readHook = f }

// SetSwitchHook makes a rebuild's switch call f once it holds the switch lock, before it
// catches up and moves the pointer, with its transaction's backend pid.
func SetSwitchHook(p *Projection, f func(pid int)) { p.switchHook = f }

// Watching is how many streams have read-your-writes waits registered for wake-ups.
func Watching(p *Projection) int { return p.wake.watching() }

// SetPolls sets the first and the longest pause of a read-your-writes wait.
func SetPolls(p *Projection, first, longest time.Duration) {
	p.polls = [2]time.Duration{first, longest}
}

// SetReprocessChunk makes a reprocess rebuild n streams per transaction.
func SetReprocessChunk(p *Projection, n int) { p.reprocessChunk = n }

// AloneHandler handles a message as the Consumer made from base handles one on its own: in
// its unit of work, through its middleware. Call it once, as Consumer.
func AloneHandler(p *Projection, base consume.Config) func(ctx context.Context, m *consume.Message) error {
	cfg, inner := p.wire(base)
	h := consume.Chain(inner, cfg.Middleware...)
	return func(ctx context.Context, m *consume.Message) error {
		return cfg.Unit(ctx, func(ctx context.Context) error { return h.Handle(ctx, m) })
	}
}

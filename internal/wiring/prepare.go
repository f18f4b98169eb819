package wiring

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Prep is a start-up step that needs a dependency (applying migrations needs the database): it
// runs in the background, retried until it succeeds, so that a service starts and serves
// /livez before its dependencies are up, and its components wait for the step instead of
// failing.
type Prep struct {
	what string
	step func(context.Context) error
	log  *slog.Logger
	once sync.Once
	done chan struct{}
}

// NewPrep returns the step; what names it in the log ("apply the migrations").
func NewPrep(log *slog.Logger, what string, step func(context.Context) error) *Prep {
	return &Prep{what: what, step: step, log: log, done: make(chan struct{})}
}

// Check is a readiness check (app.Main.AddCheck) that fails until the step has succeeded.
func (p *Prep) Check(context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
		return errors.New("not done yet: " + p.what)
	}
}

// Wait runs the step if no one has yet (retrying every 2 s and logging each failure), or waits
// for the caller that does. It reports whether the step succeeded, false when ctx ended first.
func (p *Prep) Wait(ctx context.Context) bool {
	p.once.Do(func() {
		go func() {
			for {
				err := p.step(ctx)
				if err == nil {
					close(p.done)
					return
				}
				p.log.Warn("cannot "+p.what+" yet; retrying", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		}()
	})
	select {
	case <-p.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run runs the step and then waits for ctx to end: the actor of a service whose other actors
// are turned off, so that it still prepares what it serves.
func (p *Prep) Run(ctx context.Context) error {
	p.Wait(ctx)
	<-ctx.Done()
	return nil
}

package auditlog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrUntrusted classifies a chain that does not hold the newest checkpoint: it was truncated,
// rewritten or replaced since, and the Checkpointer refuses to sign it.
var ErrUntrusted = errors.New("the audit log does not hold its newest checkpoint")

// Checkpointer signs the chain's head now and then and appends each checkpoint to a file
// outside PostgreSQL and to the log. It never signs a chain it has not seen extend its
// newest checkpoint (read the first time from a file whose every line it checks: each
// signature, and seqs that never go back): it verifies the entries appended since that checkpoint (all of them the
// first time, when the file has none), and a chain that no longer holds it is refused, counted
// and reported by Healthy until a check finds it again. A file that is absent or empty over a
// chain that has entries is started anew, with an error line and a count on
// annals_auditor_checkpoint_restarts_total.
type Checkpointer struct {
	log    *Log
	signer *Signer
	file   string
	logger *slog.Logger
	poked  chan struct{} // a batch was appended

	step   sync.Mutex // one Checkpoint at a time
	loaded bool       // under step
	anew   bool       // under step: the file held no checkpoint when loaded

	mu     sync.Mutex  // last and failed, which Healthy and due read while a step verifies
	last   *Checkpoint // the newest checkpoint, checked; nil before the first step
	failed error       // the last step's refusal; nil when trusted
}

// NewCheckpointer returns a Checkpointer that signs l's head with s and appends the
// checkpoints to file ("": none; the log lines are then the only copy, and the first
// checkpoint after a start verifies the whole chain). logger receives a line per checkpoint
// (nil: slog.Default()).
func (l *Log) NewCheckpointer(s *Signer, file string, logger *slog.Logger) *Checkpointer {
	if logger == nil {
		logger = slog.Default()
	}
	c := &Checkpointer{log: l, signer: s, file: file, logger: logger, poked: make(chan struct{}, 1)}
	l.committed = c.poke
	return c
}

// poke tells Run that a batch was appended.
func (c *Checkpointer) poke() {
	select {
	case c.poked <- struct{}{}:
	default:
	}
}

// due reports whether the newest checkpoint is at least every old.
func (c *Checkpointer) due(every time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last == nil || c.log.now().Sub(c.last.At) >= every
}

// Checkpoint verifies the chain from the newest checkpoint (read from the file the first
// time) to its head, signs the head, appends the checkpoint to the file (synced) and logs it.
// A chain that does not hold the newest checkpoint, or that is broken after it, is an error
// wrapping ErrUntrusted (the failure is counted on the metrics and kept for Healthy) and
// nothing is signed; any other error (the database, the file) is a dependency's, to retry.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, error) {
	c.step.Lock()
	defer c.step.Unlock()
	if !c.loaded && c.file != "" {
		last, b, err := newestTrusted(c.file, c.signer.Public())
		switch {
		case err != nil:
			return Checkpoint{}, err
		case b != nil:
			return Checkpoint{}, c.refuse(b)
		case last != nil:
			c.setLast(last, false)
			c.log.metrics.checkpointAt(last.At)
		default:
			c.anew = true
		}
		c.loaded = true
	}
	c.mu.Lock()
	from := c.last
	c.mu.Unlock()
	r, err := c.log.Verify(ctx, VerifyOptions{From: from})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	if !r.OK {
		return Checkpoint{}, c.refuse(r.Break)
	}
	cp := c.signer.Sign(r.LastSeq, r.LastHash, c.log.now())
	if c.file != "" {
		if err := AppendCheckpoint(c.file, cp); err != nil {
			return Checkpoint{}, err
		}
	}
	if c.anew {
		c.anew = false
		if cp.Seq > 0 {
			// A lost volume, or the file moved aside to release a refused chain: either way
			// an operator must know that what came before is vouched for by nothing here.
			c.log.metrics.checkpointRestarted()
			c.logger.ErrorContext(ctx, fmt.Sprintf("audit: no checkpoint for a chain of %d entries: anchoring anew", cp.Seq),
				"file", c.file, "seq", cp.Seq, "hash", cp.Hash.String())
		}
	}
	c.setLast(&cp, true)
	c.log.metrics.checkpointAt(cp.At)
	c.logger.InfoContext(ctx, "audit: checkpoint", "seq", cp.Seq, "hash", cp.Hash.String(), "at", cp.At.Format(time.RFC3339Nano),
		"key_id", cp.KeyID, "sig", base64.StdEncoding.EncodeToString(cp.Sig))
	return cp, nil
}

// setLast records the newest checkpoint, and clears a refusal when clear.
func (c *Checkpointer) setLast(cp *Checkpoint, clear bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = cp
	if clear {
		c.failed = nil
	}
}

// refuse records a refusal to sign and returns it.
func (c *Checkpointer) refuse(b *Break) error {
	err := fmt.Errorf("%w: seq %d: %s: %s", ErrUntrusted, b.Seq, b.Problem, b.Detail)
	c.mu.Lock()
	c.failed = err
	c.mu.Unlock()
	c.log.metrics.checkpointFailed()
	return err
}

// Healthy returns the last step's refusal (wrapping ErrUntrusted), or nil.
func (c *Checkpointer) Healthy(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// Run takes a checkpoint at once and then every interval until ctx ends, and also after a
// batch is appended (through the log's Consumer) when the newest checkpoint is an interval
// old. A refusal is logged at error level each time, a dependency's failure at warn level;
// both are tried again at the next interval.
func (c *Checkpointer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, err := c.Checkpoint(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrUntrusted):
			c.logger.ErrorContext(ctx, "audit: refusing to sign a checkpoint: the chain is not the one the newest checkpoint vouches for", "error", err)
		case err != nil:
			c.logger.WarnContext(ctx, "audit: checkpoint could not be taken; trying again at the next interval", "error", err)
		}
		if !c.wait(ctx, t, every) {
			return
		}
		t.Reset(every)
	}
}

// wait waits for the next tick, or for an append when a checkpoint is due; false when ctx
// ends first.
func (c *Checkpointer) wait(ctx context.Context, t *time.Ticker, every time.Duration) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-c.poked:
			if c.due(every) {
				return true
			}
		}
	}
}

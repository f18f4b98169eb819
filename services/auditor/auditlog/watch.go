package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// ProblemTruncated: the chain is intact but ends before an entry an earlier verification of
// the same Watch found intact: its newest entries were removed, which the chain alone cannot
// show.
const ProblemTruncated Problem = "truncated"

// Watch verifies the chain again and again, and remembers the last intact entry it saw, so
// that it also notices the newest entries being removed between two verifications.
type Watch struct {
	log  *Log
	opts VerifyOptions
	// last is the last intact entry of the previous intact verification (seq 0: none yet).
	last Report
}

// NewWatch returns a Watch over l.
func (l *Log) NewWatch(opts VerifyOptions) *Watch { return &Watch{log: l, opts: opts} }

// Check verifies the chain (Verify) and compares its end with the previous intact
// verification's: a chain that now ends at an earlier entry, or whose entry at the old end has
// another hash, is reported broken with ProblemTruncated (or the hash problem) there. The
// outcome goes to the log's metrics: only a Watch writes them, because only it can tell a
// truncated chain from an intact one, and a plain Verify (the API's) must not clear what it
// found. With the log's Anchor, a chain without its newest checkpoint also counts on
// annals_auditor_checkpoint_failures_total: that is how an auditor restarted on a rewritten
// or truncated table, whose Watch has no earlier verification to compare with, notices it.
func (w *Watch) Check(ctx context.Context) (Report, error) {
	r, err := w.log.Verify(ctx, w.opts)
	if err != nil {
		return r, err
	}
	if r.Checkpoint != nil && r.OK {
		w.log.metrics.checkpointAt(r.Checkpoint.At)
	}
	if !r.OK {
		if IsCheckpointProblem(r.Break.Problem) {
			w.log.metrics.checkpointFailed()
		}
		w.log.metrics.verified(r)
		return r, nil
	}
	switch {
	case r.LastSeq < w.last.LastSeq:
		r.OK = false
		r.Break = &Break{Seq: r.LastSeq + 1, Problem: ProblemTruncated,
			Expected: fmt.Sprintf("entries up to seq %d", w.last.LastSeq), Found: fmt.Sprintf("the chain ends at seq %d", r.LastSeq),
			Detail: "entries that an earlier verification found intact are gone"}
	case w.last.LastSeq > 0:
		// The chain is at least as long: its entry at the old end must be the one seen then.
		// Verify checked every hash against its predecessor, so an equal hash there means the
		// whole prefix is the one verified before.
		h, err := w.log.hashAt(ctx, w.last.LastSeq)
		if err != nil {
			return Report{}, err
		}
		if h != w.last.LastHash {
			r.OK = false
			r.Break = &Break{Seq: w.last.LastSeq, Problem: ProblemHash, Expected: w.last.LastHash.String(), Found: h.String(),
				Detail: "the entry an earlier verification ended at was replaced and the chain rebuilt after it"}
		}
	}
	w.log.metrics.verified(r)
	if r.OK {
		w.last = r
	}
	return r, nil
}

// Run checks the chain at once and then every interval until ctx ends, logging each outcome:
// a broken chain at error level, a verification that could not run at warn level.
func (w *Watch) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := w.Check(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.WarnContext(ctx, "audit: verification could not run; trying again at the next interval", "error", err)
		case !r.OK:
			log.ErrorContext(ctx, "audit: the hash chain is broken", "checked", r.Checked, "seq", r.Break.Seq,
				"problem", r.Break.Problem, "expected", r.Break.Expected, "found", r.Break.Found, "detail", r.Break.Detail)
		default:
			log.InfoContext(ctx, "audit: the hash chain is intact", "entries", r.Checked, "last_seq", r.LastSeq, "took", r.Took)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hashAt reads the stored hash of the entry seq.
func (l *Log) hashAt(ctx context.Context, seq int64) (Hash, error) {
	var b []byte
	if err := l.pool.QueryRow(ctx, `select hash from annals_audit_log where seq = $1`, seq).Scan(&b); err != nil {
		return Hash{}, fmt.Errorf("verify: read the hash of seq %d: %w", seq, err)
	}
	var h Hash
	if len(b) != len(h) {
		return Hash{}, fmt.Errorf("verify: the hash of seq %d has %d bytes", seq, len(b))
	}
	copy(h[:], b)
	return h, nil
}

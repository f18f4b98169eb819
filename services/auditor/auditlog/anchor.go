package auditlog

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
)

// The problems of a chain checked against checkpoints.
const (
	// ProblemCheckpointMissing: the chain has no entry at a checkpoint's seq (its tail was
	// removed, or the table emptied or replaced).
	ProblemCheckpointMissing Problem = "checkpoint_missing"
	// ProblemCheckpointMismatch: the entry at a checkpoint's seq has another hash (an entry at
	// or before it was changed and the chain rebuilt after it).
	ProblemCheckpointMismatch Problem = "checkpoint_mismatch"
	// ProblemCheckpointSignature: a checkpoint's signature does not verify with the public
	// key (a forged or changed checkpoint), or its file cannot be read as checkpoints.
	ProblemCheckpointSignature Problem = "checkpoint_signature"
	// ProblemCheckpointOrder: a checkpoint of the file has a lower seq than one before it, or
	// the seq of one before it with another hash. The file only grows, and the chain with it:
	// an old line was copied to its end (to pass off a chain rewritten after it), or two
	// chains were signed.
	ProblemCheckpointOrder Problem = "checkpoint_order"
)

// IsCheckpointProblem reports whether p is one of the checkpoint problems: the chain may be
// intact on its own, but it is not the chain the checkpoints vouch for.
func IsCheckpointProblem(p Problem) bool {
	return p == ProblemCheckpointMissing || p == ProblemCheckpointMismatch || p == ProblemCheckpointSignature ||
		p == ProblemCheckpointOrder
}

// Anchor is where a Log finds the newest checkpoint to check its chain against: a file of
// checkpoints and the public key that checks them.
type Anchor struct {
	// File is the checkpoint file (see AppendCheckpoint); an absent or empty file holds no
	// checkpoint yet.
	File string
	// Key checks the checkpoints' signatures.
	Key *PublicKey
}

// CheckCheckpoints checks cps, in order, against the chain as it is stored: each must carry a
// valid signature of key, none may go back on one before it (orderBreak), and the chain must
// hold an entry at its seq with its hash. It
// returns the index in cps of the first checkpoint that fails and why, or -1 and nil. Run it
// with a Verify of the whole chain: an intact chain that holds a checkpoint's hash at its seq
// is, entry for entry up to there, the chain that was signed.
func (l *Log) CheckCheckpoints(ctx context.Context, key *PublicKey, cps []Checkpoint) (int, *Break, error) {
	if i, b := checkFile(key, cps); b != nil {
		return i, b, nil
	}
	const chunk = 5000
	for from := 0; from < len(cps); from += chunk {
		part := cps[from:min(from+chunk, len(cps))]
		seqs := make([]int64, len(part))
		for i, c := range part {
			seqs[i] = c.Seq
		}
		hashes, last, err := l.hashesAt(ctx, seqs)
		if err != nil {
			return -1, nil, err
		}
		for i, c := range part {
			if b := checkpointBreak(c, hashes, last); b != nil {
				return from + i, b, nil
			}
		}
	}
	return -1, nil, nil
}

func signatureBreak(c Checkpoint, err error) *Break {
	return &Break{Seq: c.Seq, Problem: ProblemCheckpointSignature, Expected: "a signature of the checkpoint key", Found: c.KeyID,
		Detail: fmt.Sprintf("%s: %v", c, err)}
}

// checkFile checks the checkpoints of a file, in file order, without the chain: each must
// carry a valid signature of key and none may go back on the one before it. It returns the
// index of the first that fails and why, or -1 and nil.
func checkFile(key *PublicKey, cps []Checkpoint) (int, *Break) {
	for i, c := range cps {
		if err := key.Check(c); err != nil {
			return i, signatureBreak(c, err)
		}
		if i > 0 {
			if b := orderBreak(cps[i-1], c); b != nil {
				return i, b
			}
		}
	}
	return -1, nil
}

// orderBreak checks checkpoint c against prev, the one on the line before it: the chain only
// grows, so c's seq is not lower, and at an equal seq its hash is the same.
func orderBreak(prev, c Checkpoint) *Break {
	switch {
	case c.Seq < prev.Seq:
		return &Break{Seq: c.Seq, Problem: ProblemCheckpointOrder, Expected: fmt.Sprintf("a seq of at least %d", prev.Seq),
			Found:  fmt.Sprint(c.Seq),
			Detail: fmt.Sprintf("%s follows %s: an old checkpoint was copied after newer ones", c, prev)}
	case c.Seq == prev.Seq && c.Hash != prev.Hash:
		return &Break{Seq: c.Seq, Problem: ProblemCheckpointOrder, Expected: prev.Hash.String(), Found: c.Hash.String(),
			Detail: fmt.Sprintf("%s follows %s: two chains were signed at one seq", c, prev)}
	}
	return nil
}

// newestTrusted reads every checkpoint of file and checks them with checkFile. It returns the
// newest (nil when the file is absent or empty), or the Break of the first that fails or of a
// line that is not a checkpoint; any other error is reading the file's.
func newestTrusted(file string, key *PublicKey) (*Checkpoint, *Break, error) {
	cps, err := ReadCheckpoints(file)
	var bad *MalformedCheckpointError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil, nil
	case errors.As(err, &bad):
		return nil, &Break{Problem: ProblemCheckpointSignature, Detail: err.Error()}, nil
	case err != nil:
		return nil, nil, err
	case len(cps) == 0:
		return nil, nil, nil
	}
	if _, b := checkFile(key, cps); b != nil {
		return nil, b, nil
	}
	return &cps[len(cps)-1], nil, nil
}

// checkpointBreak checks c against the stored hashes of its seq (hashes) and the newest seq
// of the chain (last).
func checkpointBreak(c Checkpoint, hashes map[int64]Hash, last int64) *Break {
	if c.Seq == 0 {
		if c.Hash != Genesis {
			return &Break{Seq: 0, Problem: ProblemCheckpointMismatch, Expected: Genesis.String(), Found: c.Hash.String(),
				Detail: fmt.Sprintf("%s: seq 0 has the genesis hash", c)}
		}
		return nil
	}
	h, ok := hashes[c.Seq]
	if !ok {
		return &Break{Seq: c.Seq, Problem: ProblemCheckpointMissing, Expected: c.Hash.String(),
			Found:  fmt.Sprintf("no entry %d; the chain ends at seq %d", c.Seq, last),
			Detail: fmt.Sprintf("%s: the chain no longer holds this entry: it was truncated, emptied or replaced", c)}
	}
	if h != c.Hash {
		return &Break{Seq: c.Seq, Problem: ProblemCheckpointMismatch, Expected: c.Hash.String(), Found: h.String(),
			Detail: fmt.Sprintf("%s: the entry has another hash: the chain was rewritten at or before it", c)}
	}
	return nil
}

// hashesAt reads the stored hashes of the entries seqs (those that exist) and the newest seq.
func (l *Log) hashesAt(ctx context.Context, seqs []int64) (map[int64]Hash, int64, error) {
	b := &pgx.Batch{}
	b.Queue(`select seq, hash from annals_audit_log where seq = any($1)`, seqs)
	b.Queue(`select coalesce(max(seq), 0) from annals_audit_log`)
	br := l.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoints: %w", err)
	}
	out := make(map[int64]Hash, len(seqs))
	var (
		seq int64
		raw []byte
	)
	if _, err := pgx.ForEachRow(rows, []any{&seq, &raw}, func() error {
		var h Hash
		if len(raw) != len(h) {
			return fmt.Errorf("the hash of seq %d has %d bytes", seq, len(raw))
		}
		copy(h[:], raw)
		out[seq] = h
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("checkpoints: %w", err)
	}
	var last int64
	if err := br.QueryRow().Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("checkpoints: %w", err)
	}
	return out, last, nil
}

// checkAnchor checks the checkpoints of the log's anchor (newestTrusted) and the newest
// against the chain, and sets r.Checkpoint to it; a failing one makes r broken there. No
// anchor, or no checkpoint yet, leaves r as it is.
func (l *Log) checkAnchor(ctx context.Context, r *Report) error {
	if l.anchor == nil {
		return nil
	}
	c, b, err := newestTrusted(l.anchor.File, l.anchor.Key)
	switch {
	case err != nil:
		return fmt.Errorf("verify: %w", err)
	case b != nil:
		if b.Problem == ProblemCheckpointSignature && b.Seq == 0 {
			b.Seq = r.LastSeq
		}
		r.OK, r.Break = false, b
		return nil
	case c == nil:
		return nil
	}
	r.Checkpoint = c
	hashes, last, err := l.hashesAt(ctx, []int64{c.Seq})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if b := checkpointBreak(*c, hashes, last); b != nil {
		r.OK, r.Break = false, b
	}
	return nil
}

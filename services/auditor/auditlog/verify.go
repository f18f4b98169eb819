package auditlog

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Problem names what is wrong with the first broken entry of a chain.
type Problem string

// The problems Verify detects.
const (
	// ProblemSequenceGap: the entry after seq N is not N+1; entries are missing (deleted).
	ProblemSequenceGap Problem = "sequence_gap"
	// ProblemSequenceOrder: the entry after seq N has a seq of N or less (a renumbered or
	// duplicated entry), or the first entry is not seq 1.
	ProblemSequenceOrder Problem = "unexpected_sequence"
	// ProblemPrevHash: the entry's prev_hash is not the previous entry's hash (an entry
	// replaced, moved or rehashed before it).
	ProblemPrevHash Problem = "prev_hash_mismatch"
	// ProblemHash: the entry's hash is not SHA-256 of its content (its content changed).
	ProblemHash Problem = "hash_mismatch"
	// ProblemUnreadable: the entry cannot be read back as an entry (a hash that is not 32
	// bytes, metadata that is not an object of strings).
	ProblemUnreadable Problem = "unreadable_entry"
)

// Break describes the first entry at which a chain is broken.
type Break struct {
	// Seq is the first broken sequence number: that of the first missing entry for a gap,
	// otherwise that of the entry found wrong.
	Seq     int64   `json:"seq"`
	Problem Problem `json:"problem"`
	// Expected and Found are what the chain required there and what the log has (sequence
	// numbers, or hashes in hex).
	Expected string `json:"expected"`
	Found    string `json:"found"`
	Detail   string `json:"detail"`
}

// Report is the result of a verification.
type Report struct {
	// OK is true when every entry checked out.
	OK bool `json:"ok"`
	// Checked is the number of entries found intact, from seq 1 on.
	Checked int64 `json:"checked"`
	// LastSeq and LastHash are the last intact entry (0 and Genesis for none). Keeping them
	// somewhere else lets a later verification notice that entries after them were removed,
	// which the chain alone cannot show.
	LastSeq  int64 `json:"last_seq"`
	LastHash Hash  `json:"last_hash"`
	// Break is the first broken entry; nil when OK.
	Break *Break `json:"first_break,omitempty"`
	// Checkpoint is the newest checkpoint of the log's Anchor, checked against the chain
	// (a failing one is the Break); nil without an anchor or a checkpoint.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Took is how long the verification took.
	Took time.Duration `json:"-"`
}

// String summarises the report in one line.
func (r Report) String() string {
	if r.OK {
		s := fmt.Sprintf("chain intact: %d entries, head seq %d hash %s", r.Checked, r.LastSeq, r.LastHash)
		if r.Checkpoint != nil {
			s += "; holds " + r.Checkpoint.String()
		}
		return s
	}
	b := r.Break
	return fmt.Sprintf("chain broken at seq %d: %s (expected %s, found %s): %s; %d entries intact before it",
		b.Seq, b.Problem, b.Expected, b.Found, b.Detail, r.Checked)
}

// DefaultPageSize is how many entries Verify reads per query unless told otherwise.
const DefaultPageSize = 1000

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// PageSize is how many entries each query reads (DefaultPageSize when 0).
	PageSize int
	// From, when set, is a trusted point of the chain (a checked checkpoint): the entry at its
	// seq must have its hash, and the walk starts after it, so that only the entries appended
	// since are read. Checked then counts those.
	From *Checkpoint
}

// Verify walks the chain from seq 1 in order, a page at a time (memory stays bounded
// whatever the log's length), and checks each entry: its seq follows the previous one's, its
// prev_hash is the previous entry's hash (Genesis for the first), and its hash is SHA-256 of
// its content. It stops at the first broken entry. Entries appended while it runs are
// verified too, up to the point its last page reaches.
//
// It detects any change made to the log after the fact, by anyone, to any entry but the
// last ones: a changed column (hash mismatch there), a changed entry rehashed (previous-hash
// mismatch at the next), a deleted entry (sequence gap), entries swapped or renumbered. Removing
// the newest entries leaves a shorter valid chain, and rewriting an entry and every one after
// it a valid other chain: with an Anchor (Options.Anchor), an intact chain is also checked
// against the newest checkpoint, kept outside PostgreSQL, which catches both.
func (l *Log) Verify(ctx context.Context, opts VerifyOptions) (Report, error) {
	start := time.Now()
	size := opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	r := Report{LastHash: Genesis}
	if f := opts.From; f != nil && f.Seq > 0 {
		hashes, last, err := l.hashesAt(ctx, []int64{f.Seq})
		if err != nil {
			return Report{}, fmt.Errorf("verify: %w", err)
		}
		if b := checkpointBreak(*f, hashes, last); b != nil {
			r.Break, r.Took = b, time.Since(start)
			return r, nil
		}
		r.LastSeq, r.LastHash = f.Seq, f.Hash
	}
	var buf []byte
	for {
		rows, err := l.pool.Query(ctx, `select `+entryColumns+` from annals_audit_log
			where seq > $1 order by seq limit $2`, r.LastSeq, size)
		if err != nil {
			return Report{}, fmt.Errorf("verify: %w", err)
		}
		n := 0
		for rows.Next() {
			n++
			e, rerr := scanEntry(rows)
			if b := check(&r, e, rerr, &buf); b != nil {
				rows.Close()
				r.Break, r.Took = b, time.Since(start)
				return r, nil
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Report{}, fmt.Errorf("verify: %w", err)
		}
		if n < size {
			break
		}
	}
	r.OK = true
	if err := l.checkAnchor(ctx, &r); err != nil {
		return Report{}, err
	}
	r.Took = time.Since(start)
	return r, nil
}

// check checks one entry against the chain so far and moves r on past it, or returns what
// is broken.
func check(r *Report, e Entry, readErr error, buf *[]byte) *Break {
	want := r.LastSeq + 1
	switch {
	case e.Seq > want:
		return &Break{Seq: want, Problem: ProblemSequenceGap, Expected: fmt.Sprint(want), Found: fmt.Sprint(e.Seq),
			Detail: fmt.Sprintf("entries %d to %d are missing", want, e.Seq-1)}
	case e.Seq < want:
		return &Break{Seq: e.Seq, Problem: ProblemSequenceOrder, Expected: fmt.Sprint(want), Found: fmt.Sprint(e.Seq),
			Detail: fmt.Sprintf("an entry numbered %d follows entry %d", e.Seq, r.LastSeq)}
	case readErr != nil:
		return &Break{Seq: e.Seq, Problem: ProblemUnreadable, Detail: readErr.Error()}
	case e.PrevHash != r.LastHash:
		return &Break{Seq: e.Seq, Problem: ProblemPrevHash, Expected: r.LastHash.String(), Found: e.PrevHash.String(),
			Detail: "prev_hash is not the hash of the entry before: an entry was replaced, moved or rehashed"}
	}
	*buf = e.Canonical((*buf)[:0])
	if got := Hash(sha256.Sum256(*buf)); got != e.Hash {
		return &Break{Seq: e.Seq, Problem: ProblemHash, Expected: got.String(), Found: e.Hash.String(),
			Detail: "hash is not SHA-256 of the entry's content: the entry was changed"}
	}
	r.Checked++
	r.LastSeq, r.LastHash = e.Seq, e.Hash
	return nil
}

// entryColumns are the columns scanEntry reads, in its order.
const entryColumns = `seq, event_id, event_type, stream_id, stream_version, global_position,
	schema_version, data::text, metadata, correlation_id, causation_id, recorded_at, audited_at,
	topic, kafka_partition, kafka_offset, prev_hash, hash`

// scanEntry reads one row of entryColumns. When the row is there but not a well-formed entry
// it returns the entry as far as it got (its Seq at least) and the error.
func scanEntry(rows pgx.Rows) (Entry, error) {
	var (
		e              Entry
		data, md       []byte
		prev, hash     []byte
		schemaVersion  int32
		recorded, seen time.Time
	)
	if err := rows.Scan(&e.Seq, &e.EventID, &e.Type, &e.StreamID, &e.StreamVersion, &e.GlobalPosition,
		&schemaVersion, &data, &md, &e.CorrelationID, &e.CausationID, &recorded, &seen,
		&e.Topic, &e.Partition, &e.Offset, &prev, &hash); err != nil {
		return e, fmt.Errorf("read entry: %w", err)
	}
	e.SchemaVersion = int64(schemaVersion)
	e.Data = json.RawMessage(data)
	e.RecordedAt, e.AuditedAt = recorded.UTC(), seen.UTC()
	if err := json.Unmarshal(md, &e.Metadata); err != nil {
		return e, fmt.Errorf("metadata: %w", err)
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	if len(prev) != len(e.PrevHash) || len(hash) != len(e.Hash) {
		return e, fmt.Errorf("hashes of %d and %d bytes, want %d", len(prev), len(hash), len(e.Hash))
	}
	copy(e.PrevHash[:], prev)
	copy(e.Hash[:], hash)
	return e, nil
}

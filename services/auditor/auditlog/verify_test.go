package auditlog_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// Tampering with the log as its owner (who can disable the append-only trigger) is found by
// verification, at the right entry.
func TestVerify_DetectsTampering(t *testing.T) {
	t.Parallel()
	const n = 30
	for _, tc := range []struct {
		name    string
		sql     []string
		rehash  int64 // recompute this entry's hash after the SQL, as a careful forger would
		seq     int64
		problem auditlog.Problem
	}{
		{name: "UpdateData", sql: []string{`update annals_audit_log set data = '{"name":"Mallory"}' where seq = 12`},
			seq: 12, problem: auditlog.ProblemHash},
		{name: "UpdateMetadata", sql: []string{`update annals_audit_log set metadata = metadata || '{"ip":"203.0.113.9"}' where seq = 12`},
			seq: 12, problem: auditlog.ProblemHash},
		{name: "UpdateCorrelation", sql: []string{`update annals_audit_log set correlation_id = 'other' where seq = 1`},
			seq: 1, problem: auditlog.ProblemHash},
		{name: "UpdateAuditedAt", sql: []string{`update annals_audit_log set audited_at = audited_at - interval '1 day' where seq = 30`},
			seq: 30, problem: auditlog.ProblemHash},
		{name: "UpdateOffset", sql: []string{`update annals_audit_log set kafka_offset = kafka_offset + 1 where seq = 17`},
			seq: 17, problem: auditlog.ProblemHash},
		{name: "UpdateHash", sql: []string{`update annals_audit_log set hash = sha256(hash) where seq = 17`},
			seq: 17, problem: auditlog.ProblemHash},
		{name: "UpdateAndRehash", sql: []string{`update annals_audit_log set data = '{"name":"Mallory"}' where seq = 12`},
			rehash: 12, seq: 13, problem: auditlog.ProblemPrevHash},
		{name: "Delete", sql: []string{`delete from annals_audit_log where seq = 12`},
			seq: 12, problem: auditlog.ProblemSequenceGap},
		{name: "DeleteFirst", sql: []string{`delete from annals_audit_log where seq = 1`},
			seq: 1, problem: auditlog.ProblemSequenceGap},
		{name: "DeleteSeveral", sql: []string{`delete from annals_audit_log where seq between 20 and 25`},
			seq: 20, problem: auditlog.ProblemSequenceGap},
		{name: "SwapSequenceNumbers", sql: []string{
			`update annals_audit_log set seq = 1000008 where seq = 8`,
			`update annals_audit_log set seq = 8 where seq = 20`,
			`update annals_audit_log set seq = 20 where seq = 1000008`,
		}, seq: 8, problem: auditlog.ProblemPrevHash},
		{name: "SwapContents", sql: swapColumns(8, 20, "event_id", "event_type", "stream_id", "stream_version",
			"global_position", "schema_version", "data", "metadata", "correlation_id", "causation_id", "recorded_at",
			"audited_at", "topic", "kafka_partition", "kafka_offset", "prev_hash", "hash"),
			seq: 8, problem: auditlog.ProblemPrevHash},
		{name: "SwapEvents", sql: swapColumns(8, 20, "event_id", "event_type", "stream_id", "stream_version",
			"global_position", "data", "metadata", "correlation_id", "causation_id", "recorded_at"),
			seq: 8, problem: auditlog.ProblemHash},
		{name: "SwapAdjacent", sql: []string{
			`update annals_audit_log set seq = 1000005 where seq = 5`,
			`update annals_audit_log set seq = 5 where seq = 6`,
			`update annals_audit_log set seq = 6 where seq = 1000005`,
		}, seq: 5, problem: auditlog.ProblemPrevHash},
		{name: "Renumber", sql: []string{
			`update annals_audit_log set seq = seq + 1000 where seq >= 25`,
			`update annals_audit_log set seq = seq - 999 where seq >= 1000`,
		}, seq: 25, problem: auditlog.ProblemSequenceGap},
		{name: "RenumberDown", sql: []string{`update annals_audit_log set seq = 1000 + seq where seq >= 25`,
			`delete from annals_audit_log where seq = 24`,
			`update annals_audit_log set seq = seq - 1001 where seq >= 1000`,
		}, seq: 24, problem: auditlog.ProblemPrevHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.appendAll(t, messages(4, n), 9)
			e.mustVerify(t, n)
			e.tamper(t, tc.sql...)
			if tc.rehash > 0 {
				e.rehash(t, tc.rehash)
			}
			r := e.verify(t)
			if r.OK || r.Break == nil {
				t.Fatalf("verify: %s; want the chain broken at seq %d", r, tc.seq)
			}
			if r.Break.Seq != tc.seq || r.Break.Problem != tc.problem {
				t.Errorf("verify: %s; want %s at seq %d", r, tc.problem, tc.seq)
			}
			if r.Checked != tc.seq-1 || r.LastSeq != tc.seq-1 {
				t.Errorf("verify: %d entries intact, the last %d; want %d", r.Checked, r.LastSeq, tc.seq-1)
			}
			t.Log(r)
		})
	}
	// Removing the newest entry leaves a valid, shorter chain: the report's head shows it.
	t.Run("TruncateTail", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.appendAll(t, messages(4, n), 9)
		before := e.verify(t)
		e.tamper(t, `delete from annals_audit_log where seq = 30`)
		after := e.verify(t)
		if !after.OK || after.LastSeq != n-1 || after.LastHash == before.LastHash {
			t.Errorf("after truncation: %s (before: %s)", after, before)
		}
	})
}

// An empty log verifies, with the genesis hash as its head.
func TestVerify_Empty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.verify(t)
	if !r.OK || r.Checked != 0 || r.LastSeq != 0 || r.LastHash != auditlog.Genesis {
		t.Errorf("verify an empty log: %s", r)
	}
}

// tamper runs statements as the table's owner, in one transaction, with the append-only
// trigger disabled for them.
func (e *env) tamper(tb testing.TB, sql ...string) {
	tb.Helper()
	ctx := context.Background()
	tx, err := e.owner.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	stmts := append([]string{`alter table annals_audit_log disable trigger user`}, sql...)
	stmts = append(stmts, `alter table annals_audit_log enable trigger user`)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

// rehash sets an entry's hash to that of its (changed) content.
func (e *env) rehash(tb testing.TB, seq int64) {
	tb.Helper()
	page, _, err := e.log.Query(context.Background(), auditlog.Query{After: seq - 1, Limit: 1})
	if err != nil || len(page) != 1 || page[0].Seq != seq {
		tb.Fatalf("read entry %d: %v", seq, err)
	}
	h := page[0].ComputeHash()
	e.tamper(tb, `update annals_audit_log set hash = '\x`+h.String()+`' where seq = `+strconv.FormatInt(seq, 10))
}

// swapColumns swaps the columns of two entries: a list of statements for tamper.
func swapColumns(a, b int64, cols ...string) []string {
	set := ""
	for i, c := range cols {
		if i > 0 {
			set += ", "
		}
		set += c + " = s." + c
	}
	pair := strconv.FormatInt(a, 10) + ", " + strconv.FormatInt(b, 10)
	return []string{
		`create temp table swap on commit drop as select * from annals_audit_log where seq in (` + pair + `)`,
		// event ids are unique at every row: move them out of the way first
		`update annals_audit_log set event_id = gen_random_uuid() where seq in (` + pair + `)`,
		`update annals_audit_log l set ` + set + ` from swap s
			where (l.seq, s.seq) in ((` + pair + `), (` + strconv.FormatInt(b, 10) + `, ` + strconv.FormatInt(a, 10) + `))`,
	}
}

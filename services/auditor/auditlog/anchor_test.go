package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// anchored is an audit log of 40 entries with checkpoints at seq 20 and 30 in a file.
type anchored struct {
	*env
	key, pub, file string
}

func newAnchored(t *testing.T) *anchored {
	t.Helper()
	dir := t.TempDir()
	a := &anchored{env: newEnv(t), key: filepath.Join(dir, "audit.key"), pub: filepath.Join(dir, "audit.pub"),
		file: filepath.Join(dir, "checkpoints.jsonl")}
	if _, err := auditlog.GenerateKey(a.key, a.pub); err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.LoadSigner(a.key)
	if err != nil {
		t.Fatal(err)
	}
	ms := messages(3, 40)
	c := a.log.NewCheckpointer(signer, a.file, nil)
	for _, r := range [][2]int{{0, 20}, {20, 30}} {
		a.appendAll(t, ms[r[0]:r[1]], 5)
		upTo := r[1]
		cp, err := c.Checkpoint(context.Background())
		if err != nil || cp.Seq != int64(upTo) {
			t.Fatalf("checkpoint = %v, %v; want seq %d", cp, err, upTo)
		}
	}
	a.appendAll(t, ms[30:], 5)
	return a
}

// restarted is the auditor's log after a restart: a new Log on the table, with the anchor.
func (a *anchored) restarted(t *testing.T, reg prometheus.Registerer) *auditlog.Log {
	t.Helper()
	pub, err := auditlog.LoadPublicKey(a.pub)
	if err != nil {
		t.Fatal(err)
	}
	return auditlog.New(a.role, auditlog.Options{Metrics: auditlog.NewMetrics(reg),
		Anchor: &auditlog.Anchor{File: a.file, Key: pub}})
}

// rebuild recomputes prev_hash and hash of every entry from seq on, as a forger who changed
// an entry does so that the chain verifies on its own again.
func (e *env) rebuild(tb testing.TB, from int64) {
	tb.Helper()
	var stmts []string
	all := e.all(tb)
	prev := auditlog.Genesis
	for _, en := range all {
		if en.Seq >= from {
			en.PrevHash = prev
			en.Hash = en.ComputeHash()
			stmts = append(stmts, `update annals_audit_log set prev_hash = '\x`+en.PrevHash.String()+`', hash = '\x`+
				en.Hash.String()+`' where seq = `+strconv.FormatInt(en.Seq, 10))
		}
		prev = en.Hash
	}
	e.tamper(tb, stmts...)
}

// attacks are what the database's owner (or a superuser) can do to the table.
var attacks = []struct {
	name string
	do   func(t *testing.T, e *env)
	want auditlog.Problem
}{
	{"TailDeletedBelowCheckpoint", func(t *testing.T, e *env) {
		e.tamper(t, `delete from annals_audit_log where seq > 25`)
	}, auditlog.ProblemCheckpointMissing},
	{"EditedAndRehashed", func(t *testing.T, e *env) {
		e.tamper(t, `update annals_audit_log set data = '{"name":"Mallory"}' where seq = 12`)
		e.rebuild(t, 12)
	}, auditlog.ProblemCheckpointMismatch},
	{"Truncated", func(t *testing.T, e *env) {
		e.tamper(t, `truncate annals_audit_log`)
	}, auditlog.ProblemCheckpointMissing},
	{"DroppedAndRecreated", func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, s := range []string{
			`create table keep as select * from annals_audit_log where seq <= 5`,
			`drop table annals_audit_log`,
			`drop function annals_audit_log_append_only()`,
			`delete from ` + auditlog.MigrationsTable + ` where version_id > 0`,
		} {
			if _, err := e.owner.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if _, err := auditlog.Migrate(ctx, e.owner, nil, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.owner.Exec(ctx, `insert into annals_audit_log select * from keep`); err != nil {
			t.Fatal(err)
		}
	}, auditlog.ProblemCheckpointMissing},
}

// TestAnchor_Restart: after each attack the chain alone verifies intact, but an auditor
// restarted on the table (a new Log whose Watch has seen nothing before) finds that it does
// not hold its newest checkpoint, counts it, and refuses to sign another checkpoint.
func TestAnchor_Restart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			a := newAnchored(t)
			at.do(t, a.env)
			if r := a.verify(t); !r.OK {
				t.Fatalf("the attack should leave a chain that verifies on its own: %s", r)
			}
			reg := prometheus.NewPedanticRegistry()
			l := a.restarted(t, reg)
			r, err := l.NewWatch(auditlog.VerifyOptions{PageSize: 7}).Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Break == nil || r.Break.Problem != at.want || r.Break.Seq != 30 {
				t.Fatalf("the restarted auditor's check: %s; want %s at seq 30", r, at.want)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP annals_auditor_checkpoint_failures_total Checks that found the audit log without its newest checkpoint (truncated, rewritten or replaced), or a checkpoint whose signature fails.
# TYPE annals_auditor_checkpoint_failures_total counter
annals_auditor_checkpoint_failures_total 1
`), "annals_auditor_checkpoint_failures_total"); err != nil {
				t.Error(err)
			}
			signer, err := auditlog.LoadSigner(a.key)
			if err != nil {
				t.Fatal(err)
			}
			c := l.NewCheckpointer(signer, a.file, nil)
			if cp, err := c.Checkpoint(ctx); !errors.Is(err, auditlog.ErrUntrusted) {
				t.Fatalf("checkpoint of the attacked chain = %v, %v; want ErrUntrusted", cp, err)
			}
			if err := c.Healthy(ctx); !errors.Is(err, auditlog.ErrUntrusted) {
				t.Errorf("Healthy = %v, want ErrUntrusted", err)
			}
			cps, err := auditlog.ReadCheckpoints(a.file)
			if err != nil || len(cps) != 2 {
				t.Errorf("the checkpoint file has %d checkpoints (%v), want the 2 from before", len(cps), err)
			}
		})
	}

	t.Run("Intact", func(t *testing.T) {
		t.Parallel()
		a := newAnchored(t)
		reg := prometheus.NewPedanticRegistry()
		l := a.restarted(t, reg)
		r, err := l.NewWatch(auditlog.VerifyOptions{PageSize: 7}).Check(ctx)
		if err != nil || !r.OK || r.LastSeq != 40 || r.Checkpoint == nil || r.Checkpoint.Seq != 30 {
			t.Fatalf("check = %s, %v; want intact to 40 holding the checkpoint at 30", r, err)
		}
		signer, err := auditlog.LoadSigner(a.key)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := l.NewCheckpointer(signer, a.file, nil).Checkpoint(ctx)
		if err != nil || cp.Seq != 40 {
			t.Fatalf("checkpoint = %v, %v; want seq 40", cp, err)
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Error(problems, err)
		}
		if n, err := testutil.GatherAndCount(reg, "annals_auditor_checkpoint_age_seconds"); err != nil || n != 1 {
			t.Errorf("checkpoint age exported %d times (%v), want 1", n, err)
		}
	})

	t.Run("ForgedLine", func(t *testing.T) {
		t.Parallel()
		a := newAnchored(t)
		// A forger appends a checkpoint of the head with a signature of their own key.
		dir := t.TempDir()
		if _, err := auditlog.GenerateKey(filepath.Join(dir, "k"), filepath.Join(dir, "p")); err != nil {
			t.Fatal(err)
		}
		forger, err := auditlog.LoadSigner(filepath.Join(dir, "k"))
		if err != nil {
			t.Fatal(err)
		}
		cps, err := auditlog.ReadCheckpoints(a.file)
		if err != nil {
			t.Fatal(err)
		}
		forged := forger.Sign(cps[1].Seq, cps[1].Hash, cps[1].At)
		forged.KeyID = cps[1].KeyID
		if err := auditlog.AppendCheckpoint(a.file, forged); err != nil {
			t.Fatal(err)
		}
		r, err := a.restarted(t, nil).NewWatch(auditlog.VerifyOptions{}).Check(ctx)
		if err != nil || r.OK || r.Break.Problem != auditlog.ProblemCheckpointSignature {
			t.Fatalf("check with a forged checkpoint = %s, %v; want %s", r, err, auditlog.ProblemCheckpointSignature)
		}
	})
}

// TestLoadSigner_Files: keygen writes both keys readable by their owner only and never over
// an existing key; a public key does not load as a private one.
func TestLoadSigner_Files(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "k"), filepath.Join(dir, "p")
	p, err := auditlog.GenerateKey(key, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{key, pub} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, st.Mode(), err)
		}
	}
	if _, err := auditlog.GenerateKey(key, filepath.Join(dir, "p2")); err == nil {
		t.Error("keygen over an existing key succeeded")
	}
	s, err := auditlog.LoadSigner(key)
	if err != nil || s.Public().ID() != p.ID() {
		t.Fatalf("LoadSigner = %v; ids %v and %v", err, s, p)
	}
	if _, err := auditlog.LoadSigner(pub); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("LoadSigner(a public key) = %v", err)
	}
}

// TestAnchor_FileOrder: a checkpoint file only grows, so its seqs never go backwards and two
// checkpoints of one seq carry one hash. A restarted auditor refuses a file that breaks
// either, although its last line alone is validly signed and held by the chain.
func TestAnchor_FileOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// rewrite is the first entry the chain is rewritten (and rehashed) from.
		rewrite int64
		// line is the line appended then, given the file's checkpoints, the rewritten chain
		// and the signer.
		line func(cps []auditlog.Checkpoint, chain []auditlog.Entry, s *auditlog.Signer) auditlog.Checkpoint
	}{
		// An old line copied to the end: the chain rewritten after it still holds it.
		{"OldLineReplayed", 25, func(cps []auditlog.Checkpoint, _ []auditlog.Entry, _ *auditlog.Signer) auditlog.Checkpoint {
			return cps[0]
		}},
		// A signature of the rewritten chain at seq 20 (as an auditor that lost its file gives).
		{"EqualSeqOtherHash", 15, func(cps []auditlog.Checkpoint, chain []auditlog.Entry, s *auditlog.Signer) auditlog.Checkpoint {
			return s.Sign(20, chain[19].Hash, cps[1].At.Add(time.Second))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAnchored(t)
			signer, err := auditlog.LoadSigner(a.key)
			if err != nil {
				t.Fatal(err)
			}
			cps, err := auditlog.ReadCheckpoints(a.file)
			if err != nil || len(cps) != 2 {
				t.Fatalf("checkpoints = %v, %v", cps, err)
			}
			a.tamper(t, fmt.Sprintf(`update annals_audit_log set data = '{"name":"Mallory"}' where seq = %d`, tc.rewrite))
			a.rebuild(t, tc.rewrite)
			if err := auditlog.AppendCheckpoint(a.file, tc.line(cps, a.all(t), signer)); err != nil {
				t.Fatal(err)
			}

			reg := prometheus.NewPedanticRegistry()
			l := a.restarted(t, reg)
			r, err := l.NewWatch(auditlog.VerifyOptions{}).Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Break == nil || r.Break.Problem != auditlog.ProblemCheckpointOrder || r.Break.Seq != 20 {
				t.Fatalf("the restarted auditor's check: %s; want %s at seq 20", r, auditlog.ProblemCheckpointOrder)
			}
			if n, err := testutil.GatherAndCount(reg, "annals_auditor_checkpoint_failures_total"); err != nil || n != 1 {
				t.Fatalf("checkpoint failures exported %d times (%v)", n, err)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(failuresOne), "annals_auditor_checkpoint_failures_total"); err != nil {
				t.Error(err)
			}
			c := l.NewCheckpointer(signer, a.file, nil)
			if cp, err := c.Checkpoint(ctx); !errors.Is(err, auditlog.ErrUntrusted) {
				t.Fatalf("checkpoint of the rewritten chain = %v, %v; want ErrUntrusted", cp, err)
			}
			if err := c.Healthy(ctx); !errors.Is(err, auditlog.ErrUntrusted) {
				t.Errorf("Healthy = %v, want ErrUntrusted", err)
			}
		})
	}
}

const failuresOne = `
# HELP annals_auditor_checkpoint_failures_total Checks that found the audit log without its newest checkpoint (truncated, rewritten or replaced), or a checkpoint whose signature fails.
# TYPE annals_auditor_checkpoint_failures_total counter
annals_auditor_checkpoint_failures_total 1
`

// TestCheckpointer_AnchorAnew: an absent or empty checkpoint file over a chain that already
// has entries (a lost volume, or a file moved aside to release a refused chain) is signed as
// a new start, but loudly: an error line naming the chain's length and a count on
// annals_auditor_checkpoint_restarts_total. A file over an empty chain is a first start and
// counts nothing.
func TestCheckpointer_AnchorAnew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, a *anchored)
	}{
		{"FileRemoved", func(t *testing.T, a *anchored) {
			if err := os.Rename(a.file, a.file+".aside"); err != nil {
				t.Fatal(err)
			}
		}},
		{"FileEmptied", func(t *testing.T, a *anchored) {
			if err := os.Truncate(a.file, 0); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAnchored(t)
			tc.prepare(t, a)
			reg := prometheus.NewPedanticRegistry()
			l := a.restarted(t, reg)
			signer, err := auditlog.LoadSigner(a.key)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			c := l.NewCheckpointer(signer, a.file, slog.New(slog.NewJSONHandler(&logs, nil)))
			for range 2 { // counted once, at the first checkpoint
				if cp, err := c.Checkpoint(ctx); err != nil || cp.Seq != 40 {
					t.Fatalf("checkpoint = %v, %v; want seq 40, anchored anew", cp, err)
				}
			}
			if err := testutil.GatherAndCompare(reg, restarts("1"), "annals_auditor_checkpoint_restarts_total"); err != nil {
				t.Error(err)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR","msg":"audit: no checkpoint for a chain of 40 entries: anchoring anew"`) {
				t.Errorf("log = %s; want an error naming the 40 entries", logs.String())
			}
		})
	}

	t.Run("FirstStart", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		dir := t.TempDir()
		if _, err := auditlog.GenerateKey(filepath.Join(dir, "k"), filepath.Join(dir, "p")); err != nil {
			t.Fatal(err)
		}
		signer, err := auditlog.LoadSigner(filepath.Join(dir, "k"))
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		l := auditlog.New(e.role, auditlog.Options{Metrics: auditlog.NewMetrics(reg)})
		var logs bytes.Buffer
		if _, err := l.NewCheckpointer(signer, filepath.Join(dir, "cps"), slog.New(slog.NewJSONHandler(&logs, nil))).Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if err := testutil.GatherAndCompare(reg, restarts("0"), "annals_auditor_checkpoint_restarts_total"); err != nil {
			t.Error(err)
		}
		if strings.Contains(logs.String(), "ERROR") {
			t.Errorf("log of a first start = %s; want no error", logs.String())
		}
	})
}

// restarts is the exposition of annals_auditor_checkpoint_restarts_total at n.
func restarts(n string) io.Reader {
	return strings.NewReader(`
# HELP annals_auditor_checkpoint_restarts_total Checkpoint files the auditor started anew over a chain that already had entries: the file was absent or empty (a lost volume, or moved aside to release a refused chain).
# TYPE annals_auditor_checkpoint_restarts_total counter
annals_auditor_checkpoint_restarts_total ` + n + `
`)
}

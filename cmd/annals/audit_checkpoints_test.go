package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// checkpointed is an audit log of 40 entries on a schema of its own, with checkpoints at seq
// 20 and 30 signed with a key from `annals audit keygen`.
type checkpointed struct {
	pool           *pgxpool.Pool // the connecting user: a superuser in the local stack
	env            map[string]string
	key, pub, file string
}

func newCheckpointed(t *testing.T) *checkpointed {
	t.Helper()
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.Migrate(ctx, pool, nil, ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &checkpointed{pool: pool, env: map[string]string{"DATABASE_URL": testenv.SchemaURL(t, schema)},
		key: filepath.Join(dir, "audit.key"), pub: filepath.Join(dir, "audit.pub"), file: filepath.Join(dir, "checkpoints")}
	if code, out, errOut := runCLI(t, c.env, "audit", "keygen", "-key", c.key, "-public-key", c.pub); code != 0 ||
		!strings.Contains(out, "key id") {
		t.Fatalf("audit keygen = %d:\n%s%s", code, out, errOut)
	}
	role, err := auditlog.RolePool(ctx, pool, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(role.Close)
	signer, err := auditlog.LoadSigner(c.key)
	if err != nil {
		t.Fatal(err)
	}
	l := auditlog.New(role, auditlog.Options{})
	cp := l.NewCheckpointer(signer, c.file, nil)
	for i := range 40 {
		stream := fmt.Sprintf("user-cp-%d", i%4)
		m := &consume.Message{Topic: "annals.user", Partition: i % 4, Offset: int64(i / 4), Key: []byte(stream),
			Event: events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: stream, Version: int64(i / 4), Type: "UserCreated",
				SchemaVersion: 1, Data: json.RawMessage(`{"name":"CLI"}`), RecordedAt: time.Now()}}
		if err := consume.PostgresUnit(role)(ctx, func(ctx context.Context) error { return l.HandleBatch(ctx, []*consume.Message{m}) }); err != nil {
			t.Fatal(err)
		}
		if i == 19 || i == 29 {
			if _, err := cp.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// tamper runs sql as the connecting user with the table's triggers disabled.
func (c *checkpointed) tamper(t *testing.T, sql ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	sql = append(append([]string{`alter table annals_audit_log disable trigger user`}, sql...), `alter table annals_audit_log enable trigger user`)
	for _, s := range sql {
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// rewrite changes entry seq and recomputes the hashes of it and every entry after it.
func (c *checkpointed) rewrite(t *testing.T, seq int64) {
	t.Helper()
	c.tamper(t, `update annals_audit_log set data = '{"name":"Mallory"}' where seq = `+strconv.FormatInt(seq, 10))
	page, _, err := auditlog.New(c.pool, auditlog.Options{}).Query(context.Background(), auditlog.Query{Limit: auditlog.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	prev := auditlog.Genesis
	for _, e := range page {
		if e.Seq >= seq {
			e.PrevHash = prev
			e.Hash = e.ComputeHash()
			stmts = append(stmts, fmt.Sprintf(`update annals_audit_log set prev_hash = '\x%s', hash = '\x%s' where seq = %d`, e.PrevHash, e.Hash, e.Seq))
		}
		prev = e.Hash
	}
	c.tamper(t, stmts...)
}

func (c *checkpointed) verify(t *testing.T, extra ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, c.env, append([]string{"audit", "verify", "-checkpoints", c.file, "-public-key", c.pub}, extra...)...)
}

// TestAuditVerify_Checkpoints: what the database's owner (here a superuser) can do to the
// table, and the chain alone cannot show, `annals audit verify -checkpoints` reports, naming
// the first checkpoint the chain does not hold.
func TestAuditVerify_Checkpoints(t *testing.T) {
	t.Parallel()
	attacks := []struct {
		name string
		do   func(t *testing.T, c *checkpointed)
		want string
	}{
		{"TailDeletedBelowCheckpoint", func(t *testing.T, c *checkpointed) {
			c.tamper(t, `delete from annals_audit_log where seq > 25`)
		}, "checkpoint at line 2 of " + "%s fails: checkpoint_missing"},
		{"EditedAndRehashed", func(t *testing.T, c *checkpointed) { c.rewrite(t, 12) },
			"checkpoint at line 1 of %s fails: checkpoint_mismatch"},
		{"Truncated", func(t *testing.T, c *checkpointed) { c.tamper(t, `truncate annals_audit_log`) },
			"checkpoint at line 1 of %s fails: checkpoint_missing"},
		{"DroppedAndRecreated", func(t *testing.T, c *checkpointed) {
			ctx := context.Background()
			for _, s := range []string{`drop table annals_audit_log`, `drop function annals_audit_log_append_only()`,
				`delete from ` + auditlog.MigrationsTable + ` where version_id > 0`} {
				if _, err := c.pool.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			if _, err := auditlog.Migrate(ctx, c.pool, nil, ""); err != nil {
				t.Fatal(err)
			}
		}, "checkpoint at line 1 of %s fails: checkpoint_missing"},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			c := newCheckpointed(t)
			at.do(t, c)
			if code, out, errOut := runCLI(t, c.env, "audit", "verify"); code != 0 {
				t.Fatalf("the attack should leave a chain that verifies on its own: %d\n%s%s", code, out, errOut)
			}
			code, out, errOut := c.verify(t)
			if code != 1 || !strings.Contains(out, fmt.Sprintf(at.want, c.file)) ||
				!strings.Contains(errOut, "a checkpoint of the audit log fails: line ") {
				t.Errorf("audit verify -checkpoints = %d, want 1 and %q:\n%s%s", code, fmt.Sprintf(at.want, c.file), out, errOut)
			}
		})
	}

	t.Run("Intact", func(t *testing.T) {
		t.Parallel()
		c := newCheckpointed(t)
		code, out, errOut := c.verify(t)
		if code != 0 || !strings.Contains(out, "the chain holds all 2 checkpoints") || !strings.Contains(out, "newest checkpoint: seq 30 at ") {
			t.Errorf("audit verify -checkpoints of an intact chain = %d:\n%s%s", code, out, errOut)
		}
		code, out, _ = c.verify(t, "-json")
		var got struct {
			OK          bool `json:"ok"`
			Checkpoints struct {
				Count  int               `json:"count"`
				Newest map[string]any    `json:"newest"`
				Failed map[string]string `json:"first_failure"`
				Age    float64           `json:"newest_age_seconds"`
			} `json:"checkpoints"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || !got.OK || got.Checkpoints.Count != 2 ||
			got.Checkpoints.Newest["seq"] != float64(30) || got.Checkpoints.Failed != nil || got.Checkpoints.Age < 0 {
			t.Errorf("audit verify -checkpoints -json = %d, %v:\n%s", code, err, out)
		}
	})

	t.Run("ForgedLine", func(t *testing.T) {
		t.Parallel()
		c := newCheckpointed(t)
		cps, err := auditlog.ReadCheckpoints(c.file)
		if err != nil {
			t.Fatal(err)
		}
		forged := cps[1]
		forged.Seq, forged.At = 40, forged.At.Add(time.Second) // the signature no longer covers it
		if err := auditlog.AppendCheckpoint(c.file, forged); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := c.verify(t)
		if code != 1 || !strings.Contains(out, "checkpoint at line 3 of "+c.file+" fails: checkpoint_signature") {
			t.Errorf("audit verify -checkpoints with a forged line = %d:\n%s%s", code, out, errOut)
		}
	})

	// An old line copied to the end of the file: each line alone is signed and held by the
	// chain, but the file went back.
	t.Run("OldLineReplayed", func(t *testing.T) {
		t.Parallel()
		c := newCheckpointed(t)
		cps, err := auditlog.ReadCheckpoints(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := auditlog.AppendCheckpoint(c.file, cps[0]); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := c.verify(t)
		if code != 1 || !strings.Contains(out, "checkpoint at line 3 of "+c.file+" fails: checkpoint_order") {
			t.Errorf("audit verify -checkpoints with an old line replayed = %d:\n%s%s", code, out, errOut)
		}
	})

	// The newest lines of the file removed: every line left is held by the chain, but the
	// newest is older than the file's checkpoints ever get while the auditor signs.
	t.Run("NewestLinesRemoved", func(t *testing.T) {
		t.Parallel()
		c := newCheckpointed(t)
		signer, err := auditlog.LoadSigner(c.key)
		if err != nil {
			t.Fatal(err)
		}
		cps, err := auditlog.ReadCheckpoints(c.file)
		if err != nil {
			t.Fatal(err)
		}
		// What is left of a file whose lines after the first were removed two hours on.
		old := filepath.Join(t.TempDir(), "checkpoints")
		if err := auditlog.AppendCheckpoint(old, signer.Sign(cps[0].Seq, cps[0].Hash, time.Now().Add(-2*time.Hour))); err != nil {
			t.Fatal(err)
		}
		args := []string{"audit", "verify", "-checkpoints", old, "-public-key", c.pub}
		code, out, errOut := runCLI(t, c.env, append(args, "-max-age", "5m")...)
		if code != 1 || !strings.Contains(out, "older than -max-age 5m0s") ||
			!strings.Contains(errOut, "the newest checkpoint of the audit log is older than 5m0s") {
			t.Errorf("audit verify -max-age 5m of a 2-hour-old checkpoint = %d, want 1:\n%s%s", code, out, errOut)
		}
		if code, out, errOut := runCLI(t, c.env, append(args, "-max-age", "3h")...); code != 0 {
			t.Errorf("audit verify -max-age 3h of a 2-hour-old checkpoint = %d, want 0:\n%s%s", code, out, errOut)
		}
		if code, out, errOut := c.verify(t, "-max-age", "5m"); code != 0 {
			t.Errorf("audit verify -max-age 5m of fresh checkpoints = %d, want 0:\n%s%s", code, out, errOut)
		}
	})

	t.Run("Usage", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{}
		for _, args := range [][]string{{"audit", "verify", "-public-key", "k"}, {"audit", "keygen", "extra"},
			{"audit", "verify", "-max-age", "1h"}, {"audit", "verify", "-checkpoints", "f", "-max-age", "-1h"}} {
			if code, _, errOut := runCLI(t, env, args...); code != 2 || !strings.Contains(errOut, "usage") {
				t.Errorf("annals %v = %d, want 2 and the usage:\n%s", args, code, errOut)
			}
		}
	})
}

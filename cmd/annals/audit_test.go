package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

func TestAuditCmd(t *testing.T) {
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"DATABASE_URL": url + sep + "search_path=" + schema}

	code, out, errOut := runCLI(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "no audit log") {
		t.Errorf("audit verify without a log = %d, want 1 and a hint:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "audit", "migrate")
	if code != 0 || !strings.Contains(out, "applied 00001") {
		t.Fatalf("audit migrate = %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "verified 0 entries") {
		t.Errorf("audit verify of an empty log = %d:\n%s", code, out)
	}

	// 40 entries, appended as the auditor does.
	role, err := auditlog.RolePool(ctx, pool, "")
	if err != nil {
		t.Fatal(err)
	}
	defer role.Close()
	var ms []*consume.Message
	for i := range 40 {
		stream := fmt.Sprintf("user-cli-%d", i%4)
		ms = append(ms, &consume.Message{Topic: "annals.user", Partition: i % 4, Offset: int64(i / 4), Key: []byte(stream),
			Event: events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: stream, Version: int64(i / 4), Type: "UserCreated",
				SchemaVersion: 1, Data: json.RawMessage(`{"name":"CLI"}`), RecordedAt: time.Now()}})
	}
	l := auditlog.New(role, auditlog.Options{})
	if err := consume.PostgresUnit(role)(ctx, func(ctx context.Context) error { return l.HandleBatch(ctx, ms) }); err != nil {
		t.Fatal(err)
	}

	code, out, errOut = runCLI(t, env, "audit", "verify", "-page-size", "7")
	if code != 0 || !strings.Contains(out, "verified 40 entries") || !strings.Contains(out, "the chain is intact") ||
		!strings.Contains(out, "head: seq 40 hash ") {
		t.Errorf("audit verify = %d:\n%s%s", code, out, errOut)
	}
	for _, sql := range []string{
		`alter table annals_audit_log disable trigger user`,
		`delete from annals_audit_log where seq = 23`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runCLI(t, env, "audit", "verify", "-page-size", "5")
	if code != 1 || !strings.Contains(out, "broken at seq 23: sequence_gap") || !strings.Contains(errOut, "broken at seq 23") {
		t.Errorf("audit verify after a delete = %d, want 1 and seq 23:\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "audit", "verify", "-json")
	var r auditlog.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.OK || r.Break == nil || r.Break.Seq != 23 ||
		r.Break.Problem != auditlog.ProblemSequenceGap || r.Checked != 22 {
		t.Errorf("audit verify -json = %d, %v:\n%s", code, err, out)
	}

	for _, args := range [][]string{{"audit"}, {"audit", "frobnicate"}, {"audit", "verify", "extra"}, {"audit", "verify", "-page-size", "0"},
		{"audit", "verify", "-fast"}, {"audit", "migrate", "now"}} {
		if code, _, errOut := runCLI(t, env, args...); code != 2 || !strings.Contains(errOut, "usage") {
			t.Errorf("annals %v = %d, want 2 and the usage:\n%s", args, code, errOut)
		}
	}
}

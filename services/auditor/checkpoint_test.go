package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// startAuditor runs the auditor in process with vars and returns its address and a function
// that stops it.
func startAuditor(t *testing.T, vars map[string]string) (string, func()) {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Auditor, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context, *app.Main) error{migrate, wire} {
		if err := step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	return "http://" + m.Addr(), func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
		m.Close()
	}
}

// poll calls cond until it holds or within has passed.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The auditor signs checkpoints of its chain into a file; restarted on a chain rewritten by
// the database's owner (an entry changed and every hash after it recomputed), it refuses it:
// /readyz fails its audit_checkpoint check, the failure is counted on /metrics, and no new
// checkpoint is signed.
func TestAuditor_Checkpoints(t *testing.T) {
	pool, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, pub, file := filepath.Join(dir, "k"), filepath.Join(dir, "p"), filepath.Join(dir, "checkpoints.jsonl")
	if _, err := auditlog.GenerateKey(key, pub); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DATABASE_URL":                testenv.SchemaURL(t, schemaName),
		"KAFKA_BROKERS":               strings.Join(testenv.KafkaBrokers(t), ","),
		"KAFKA_TOPIC_PREFIX":          "test-" + testenv.UniqueName(t),
		"EVENT_HANDLERS_ENABLED":      "false",
		"LOG_LEVEL":                   "warn",
		"EVENT_SIGNING_KEY":           testenv.SigningKey,
		"API_KEYS":                    testenv.APIKeys,
		"AUDITOR_CHECKPOINT_KEY_FILE": key,
		"AUDITOR_CHECKPOINT_FILE":     file,
		"AUDITOR_CHECKPOINT_INTERVAL": "50ms",
	}
	readyz := func(base string) (int, map[string]string) {
		var r struct {
			Checks map[string]string `json:"checks"`
		}
		return getJSON(t, base+"/readyz", &r), r.Checks
	}
	newest := func() int64 {
		c, ok, err := auditlog.NewestCheckpoint(file)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return -1
		}
		return c.Seq
	}

	base, stop := startAuditor(t, vars)
	role, err := auditlog.RolePool(ctx, pool, "")
	if err != nil {
		t.Fatal(err)
	}
	defer role.Close()
	l := auditlog.New(role, auditlog.Options{})
	var ms []*consume.Message
	for i := range 10 {
		ms = append(ms, &consume.Message{Topic: "annals.user", Offset: int64(i), Event: events.Envelope{EventID: uuid.Must(uuid.NewV7()),
			StreamID: "user-cp", Version: int64(i), Type: "UserCreated", SchemaVersion: 1, Data: json.RawMessage(`{"name":"A"}`), RecordedAt: time.Now()}})
	}
	if err := consume.PostgresUnit(role)(ctx, func(ctx context.Context) error { return l.HandleBatch(ctx, ms) }); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "a checkpoint of seq 10", func() bool { return newest() == 10 })
	if code, checks := readyz(base); code != http.StatusOK || checks["audit_checkpoint"] != "ok" {
		t.Errorf("readyz with an intact chain: %d %v", code, checks)
	}
	stop()

	// The database's owner changes entry 3 and recomputes every hash from there on.
	page, _, err := l.Query(ctx, auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`alter table annals_audit_log disable trigger user`,
		`update annals_audit_log set data = '{"name":"Mallory"}' where seq = 3`}
	prev := auditlog.Genesis
	for _, e := range page {
		if e.Seq == 3 {
			e.Data = json.RawMessage(`{"name":"Mallory"}`)
		}
		if e.Seq >= 3 {
			e.PrevHash = prev
			e.Hash = e.ComputeHash()
			stmts = append(stmts, fmt.Sprintf(`update annals_audit_log set prev_hash = '\x%s', hash = '\x%s' where seq = %d`, e.PrevHash, e.Hash, e.Seq))
		}
		prev = e.Hash
	}
	stmts = append(stmts, `alter table annals_audit_log enable trigger user`)
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if r, err := l.Verify(ctx, auditlog.VerifyOptions{}); err != nil || !r.OK {
		t.Fatalf("the rewritten chain should verify on its own: %s, %v", r, err)
	}
	lines, err := auditlog.ReadCheckpoints(file)
	if err != nil {
		t.Fatal(err)
	}

	base, stop = startAuditor(t, vars)
	defer stop()
	// Unready, the checks come as the error's fields.
	poll(t, 20*time.Second, "readyz refusing the rewritten chain", func() bool {
		resp, err := testenv.Client.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), `"audit_checkpoint":"`) &&
			strings.Contains(string(b), "checkpoint_mismatch")
	})
	resp, err := testenv.Client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "\nannals_auditor_checkpoint_failures_total 0\n") ||
		!strings.Contains(string(body), "\nannals_auditor_checkpoint_failures_total ") {
		t.Errorf("/metrics does not count the refused chain:\n%s", body)
	}
	after, err := auditlog.ReadCheckpoints(file)
	if err != nil || len(after) != len(lines) {
		t.Errorf("the refused chain got checkpoints: %d lines before, %d after (%v)", len(lines), len(after), err)
	}
}

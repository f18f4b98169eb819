//go:build stack

package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// The auditor's fault test: `annals relay` publishes what a load appends to the event store,
// and the auditor, a process of its own, is killed with SIGKILL three times while it appends
// to its log, and started again. Afterwards the log holds every event of the store exactly
// once, with what the store recorded, each stream's events in version order, and its hash
// chain verifies (with `annals audit verify` and the API).

// auditorBinaries are the auditor and the admin CLI.
type auditorBinaries struct{ auditor, annals string }

// buildAuditorBinaries builds the auditor and the admin CLI into a folder of the test's own.
func buildAuditorBinaries(t *testing.T) auditorBinaries {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./services/auditor", "./cmd/annals")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return auditorBinaries{auditor: filepath.Join(dir, "auditor"), annals: filepath.Join(dir, "annals")}
}

// auditorClient is the test's HTTP client for the auditor.
var auditorClient = &http.Client{Timeout: 30 * time.Second, Transport: testenv.Authorizing(http.DefaultTransport)}

// auditorProcess is a running auditor with its base URL.
type auditorProcess struct {
	*process
	url string
}

// startAuditor starts the auditor on addr with the deployment's environment and waits until
// /readyz answers 200.
func startAuditor(t *testing.T, bin string, e *faultEnv, name, addr string) *auditorProcess {
	t.Helper()
	vars := maps.Clone(e.vars)
	vars["HTTP_ADDR"] = addr
	vars["MIGRATE_ON_START"] = "true"
	vars["LOG_FORMAT"] = "json"
	auditorClient.CloseIdleConnections() // connections to a killed auditor on the same address
	a := &auditorProcess{process: startProcess(t, bin, nil, vars, name), url: "http://" + addr}
	waitEvery(t, time.Minute, 50*time.Millisecond, name+" to answer /readyz", func() bool {
		if a.exited() {
			t.Fatalf("%s exited before it was ready: %v", name, a.err)
		}
		resp, err := auditorClient.Get(a.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// auditEntries is the number of entries in the audit log.
func auditEntries(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_audit_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedEvents is the number of events in the event store.
func storedEvents(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAuditor_SIGKILL: the auditor is killed with SIGKILL at three points while 12,000 events
// flow from the store through the relay, each time after it has appended some entries since
// it started, and started again. Nothing is lost, nothing is recorded twice, the chain
// verifies.
func TestAuditor_SIGKILL(t *testing.T) {
	bins := buildAuditorBinaries(t)
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { auditorKillRound(t, bins) })
	}
}

func auditorKillRound(t *testing.T, bins auditorBinaries) {
	e := newFaultEnv(t)
	store := postgres.New(e.pool, postgres.Options{Notify: true})
	startProcess(t, bins.annals, []string{"relay"}, e.vars, "relay")
	addr := "127.0.0.1:" + fmt.Sprint(freePorts(t, 1)[0])
	aud := startAuditor(t, bins.auditor, e, "auditor-1", addr)

	l := load{streams: 200, events: 12_000, writers: 4, perSecond: 1_500}
	a := l.start(t, store)
	var report []string
	for i, share := range []float64{0.2, 0.45, 0.7} {
		since := auditEntries(t, e.pool)
		waitEvery(t, 2*time.Minute, 20*time.Millisecond, fmt.Sprintf("%.0f%% of the events appended and the auditor busy, for kill %d", share*100, i+1), func() bool {
			if aud.exited() {
				t.Fatalf("%s exited on its own: %v", aud.name, aud.err)
			}
			n := auditEntries(t, e.pool)
			return a.count() >= int(share*float64(l.events)) && n >= since+100
		})
		aud.kill()
		report = append(report, fmt.Sprintf("kill %d after %d events appended, %d audited", i+1, a.count(), auditEntries(t, e.pool)))
		aud = startAuditor(t, bins.auditor, e, fmt.Sprintf("auditor-%d", i+2), addr)
	}
	select {
	case <-a.done:
	case <-time.After(time.Minute):
		t.Fatalf("the appends did not finish within a minute (%d of %d)", a.count(), l.events)
	}
	if t.Failed() {
		return
	}
	checkOutbox(t, e.pool, time.Minute)
	total := storedEvents(t, e.pool)
	if total != int64(l.events) {
		t.Fatalf("the store holds %d events, want %d", total, l.events)
	}
	waitEvery(t, 2*time.Minute, 50*time.Millisecond, "every event audited", func() bool {
		if aud.exited() {
			t.Fatalf("%s exited on its own: %v", aud.name, aud.err)
		}
		return auditEntries(t, e.pool) >= total
	})
	checkAuditLog(t, e)

	// The chain verifies, with the CLI and the API.
	cmd := exec.Command(bins.annals, "audit", "verify", "-page-size", "500")
	cmd.Dir = t.TempDir()
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("verified %d entries", total)) || !strings.Contains(string(out), "the chain is intact") {
		t.Errorf("annals audit verify: %v\n%s", err, out)
	}
	resp, err := auditorClient.Get(aud.url + "/v1/audit/verify")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !rep.OK || rep.Checked != total {
		t.Errorf("GET /v1/audit/verify: %d %+v %v", resp.StatusCode, rep, err)
	}
	t.Logf("%s; %d events audited once each, the chain intact", strings.Join(report, "; "), total)
}

// checkAuditLog checks the log against the event store: every event once, as the store
// recorded it, read from its category's topic, and each stream's events in version order.
func checkAuditLog(t *testing.T, e *faultEnv) {
	t.Helper()
	ctx := context.Background()
	prefix := e.cfg.Kafka.TopicPrefix + "."
	for _, c := range []struct{ what, sql string }{
		{"entries of events the store does not have", `select count(*) from annals_audit_log a
			where not exists (select from annals_events e where e.event_id = a.event_id)`},
		{"events of the store not audited", `select count(*) from annals_events e
			where not exists (select from annals_audit_log a where a.event_id = e.event_id)`},
		{"events recorded more than once", `select count(*) - count(distinct event_id) from annals_audit_log`},
		{"entries that differ from the store's event", `select count(*) from annals_audit_log a join annals_events e using (event_id)
			where (a.event_type, a.stream_id, a.stream_version, a.global_position, a.data::jsonb, a.metadata,
			       a.correlation_id, a.causation_id, a.recorded_at, a.topic)
			   is distinct from
			      (e.type, e.stream_id, e.version, e.global_position, e.data::jsonb, e.metadata::jsonb,
			       coalesce(e.correlation_id, ''), coalesce(e.causation_id, ''), e.recorded_at, '` + prefix + `' || e.category)`},
		{"sequence numbers that are not 1..n", `select count(*) from (select seq, row_number() over (order by seq) n
			from annals_audit_log) s where seq <> n`},
		{"stream events out of version order", `select count(*) from (select stream_version,
			lag(stream_version, 1, -1::bigint) over (partition by stream_id order by seq) prev from annals_audit_log) s
			where stream_version <> prev + 1`},
	} {
		var n int64
		if err := e.pool.QueryRow(ctx, c.sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
	var dead int64
	if err := e.pool.QueryRow(ctx, `select count(*) from annals_consumer_blocks where group_name = $1`, e.cfg.ConsumerGroup("auditor")).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dead != 0 {
		t.Errorf("%d streams blocked behind dead letters", dead)
	}
}

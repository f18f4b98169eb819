package auditlog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// TestMetrics_Verify checks that the verification gauges appear only once a Watch has verified
// the chain (a 0 from start-up would fire the "chain broken" alert), then report its outcome:
// 1 for an intact chain, 0 after tampering, with the entries checked; and that a plain Verify,
// the API's, leaves them alone.
func TestMetrics_Verify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewPedanticRegistry()
	e.log = auditlog.New(e.role, auditlog.Options{Metrics: auditlog.NewMetrics(reg)})
	names := []string{"annals_auditor_last_verify_ok", "annals_auditor_last_verify_entries", "annals_auditor_last_verify_timestamp_seconds"}

	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 0 {
		t.Fatalf("before any verification: %d verification series (err %v), want none", n, err)
	}

	e.appendAll(t, messages(3, 12), 5)
	e.mustVerify(t, 12)
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 0 {
		t.Fatalf("after a plain Verify: %d verification series (err %v), want none", n, err)
	}
	w := e.log.NewWatch(auditlog.VerifyOptions{})
	if r, err := w.Check(context.Background()); err != nil || !r.OK {
		t.Fatalf("watch: %s, %v", r, err)
	}
	want := `
# HELP annals_auditor_last_verify_entries The entries the last verification of the chain checked.
# TYPE annals_auditor_last_verify_entries gauge
annals_auditor_last_verify_entries 12
# HELP annals_auditor_last_verify_ok 1 when the last verification of the chain found it intact, 0 when it found it broken.
# TYPE annals_auditor_last_verify_ok gauge
annals_auditor_last_verify_ok 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[:2]...); err != nil {
		t.Fatalf("after an intact verification: %v", err)
	}
	if n, _ := testutil.GatherAndCount(reg, names[2]); n != 1 {
		t.Fatalf("after a verification: %d timestamp series, want 1", n)
	}

	e.tamper(t, `update annals_audit_log set data = '{"name":"Mallory"}' where seq = 7`)
	if r, err := w.Check(context.Background()); err != nil || r.OK {
		t.Fatalf("watch after tampering: %s, %v; want broken", r, err)
	}
	want = strings.Replace(strings.Replace(want, "entries 12", "entries 6", 1), "last_verify_ok 1\n", "last_verify_ok 0\n", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[:2]...); err != nil {
		t.Fatalf("after a broken verification: %v", err)
	}
	// The API's Verify cannot see everything a Watch sees, and must not clear its finding.
	e.tamper(t, `delete from annals_audit_log where seq >= 7`)
	if r := e.verify(t); !r.OK {
		t.Fatalf("a plain Verify of the shortened chain: %s; want intact", r)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[:2]...); err != nil {
		t.Fatalf("after a plain Verify: %v", err)
	}
}

package api_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/pkg/hops"
)

// TestCommand_CommandToCommitHop: every command that records events is timed from its
// arrival to its commit in annals_hop_seconds{hop="command_to_commit"}; a refused command and
// an idempotent replay, which commit nothing, are not.
func TestCommand_CommandToCommitHop(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e := newEnv(t, func(s *setup) { s.api.Hops = hops.NewHistogram(reg, hops.CommandToCommit) })
	count := func() uint64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == hops.MetricName {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		t.Fatalf("no %s", hops.MetricName)
		return 0
	}
	if r := e.do(t, "POST", "/v1/users", map[string]string{"email": "ada@example.com", "name": "Ada"}, "Idempotency-Key", "k1"); r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := e.do(t, "POST", "/v1/users", map[string]string{"email": "ada@example.com", "name": "Ada"}, "Idempotency-Key", "k1"); r.Status != http.StatusCreated {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	if r := e.do(t, "POST", "/v1/users", map[string]string{"email": "not an email", "name": "Ada"}); r.Status < 400 {
		t.Fatalf("a bad command answered %d", r.Status)
	}
	if got := count(); got != 1 {
		t.Errorf("command_to_commit observed %d times, want 1 (the one command that committed)", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

//go:build stack

package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// The monitoring assets' test against a real Prometheus (the Debian package that
// `scripts/stack.sh install prometheus` installs): every alert rule file passes
// `promtool check rules` and its unit tests, Prometheus loads the rules and evaluates each
// without error while it scrapes the four services, and every query of every Grafana
// dashboard parses and returns data while `annals load` drives the writer.

// promRateInterval stands in for Grafana's $__rate_interval: four scrape intervals of the
// test's Prometheus, as Grafana computes it.
const promRateInterval = "4s"

// dashboardQuery is one query of a dashboard: a panel's target or a template variable's.
type dashboardQuery struct {
	where string // file, panel and target, for messages
	expr  string // PromQL, or label_values(...) for a variable
}

// dashboardQueries reads every query of the dashboards of deploy/grafana/dashboards.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana/dashboards (%v)", err)
	}
	var out []dashboardQuery
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Templating struct {
				List []struct {
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &dash); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		for _, v := range dash.Templating.List {
			out = append(out, dashboardQuery{where: fmt.Sprintf("%s: variable %s", name, v.Name), expr: v.Definition})
		}
		for _, p := range dash.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{where: fmt.Sprintf("%s: panel %q, query %s", name, p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	return out
}

// labelValuesRE is Grafana's label_values(selector, label) variable query.
var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// promQL turns a dashboard query into the PromQL Prometheus runs: Grafana's variables get
// the values "All" and the test's scrape interval give them, and label_values(selector,
// label) becomes the selector's series that have the label.
func promQL(q string) string {
	if m := labelValuesRE.FindStringSubmatch(q); m != nil {
		return fmt.Sprintf(`count by (%s) (%s)`, m[2], m[1])
	}
	return strings.NewReplacer(
		"$__rate_interval", promRateInterval,
		"$__interval", "1s",
		"$__range", "5m",
		"$group", ".*",
		"$topic", ".*",
		"$service", ".*",
	).Replace(q)
}

// promResult is the part of a Prometheus API answer the test reads.
type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// promQuery runs an instant query.
func promQuery(ctx context.Context, base, expr string) (promResult, error) {
	var r promResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return r, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	return r, nil
}

// hasData reports whether the result holds a sample that is a number (histogram_quantile
// over buckets that did not move answers NaN: that is no data to chart).
func (r promResult) hasData() bool {
	for _, s := range r.Data.Result {
		v, ok := s.Value[1].(string)
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
			return true
		}
	}
	return false
}

// startPrometheus runs Prometheus on a free port, scraping targets (service name → host:port)
// every second and evaluating the rule files every second, and waits until it is ready.
func startPrometheus(t *testing.T, bin string, targets map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %q\nscrape_configs:\n  - job_name: annals\n    static_configs:\n",
		filepath.Join(repoRoot(t), "deploy", "prometheus", "rules", "*.rules.yml"))
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range targets {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {service: %q}\n", targets[n], n)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	p := startProcess(t, bin, []string{"--config.file=" + path, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr}, nil, "prometheus")
	t.Cleanup(func() { p.stop(30 * time.Second) })
	base := "http://" + addr
	waitEvery(t, time.Minute, 100*time.Millisecond, "Prometheus to be ready", func() bool {
		if p.exited() {
			t.Fatalf("prometheus exited: %v\n%s", p.err, p.logText(t))
		}
		resp, err := httpc.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// prometheusBinaries finds prometheus and promtool, which make test installs.
func prometheusBinaries(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (scripts/stack.sh install prometheus installs it; make test does): %v", err)
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatalf("promtool is not installed: %v", err)
	}
	return bin
}

// TestPrometheus_RulesAndDashboards is the test described at the top of this file.
func TestPrometheus_RulesAndDashboards(t *testing.T) {
	promBin := prometheusBinaries(t)
	root := repoRoot(t)

	rules, err := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "rules", "*.rules.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rule files in deploy/prometheus/rules (%v)", err)
	}
	out, err := exec.Command("promtool", append([]string{"check", "rules"}, rules...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	ruleTests, _ := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "rules", "*.test.yml"))
	if len(ruleTests) == 0 {
		t.Fatal("no rule unit tests (*.test.yml) in deploy/prometheus/rules")
	}
	cmd := exec.Command("promtool", append([]string{"test", "rules"}, ruleTests...)...)
	cmd.Dir = filepath.Dir(ruleTests[0])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	queries := dashboardQueries(t)
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)
	e := newFaultEnv(t)
	e.vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
	e.vars["SMTP_STARTTLS"] = "none"
	e.vars["LAG_POLL_INTERVAL"] = "1s"
	e.vars["LAG_STATUS_WINDOW"] = "5"
	addrs := map[string]string{"writer": freeAddr(t), "projector": freeAddr(t), "notifier": freeAddr(t), "auditor": freeAddr(t)}
	writer := startService(t, bins.writer, e, "writer", addrs["writer"])
	startService(t, bins.projector, e, "projector", addrs["projector"])
	startService(t, notifierBin, e, "notifier", addrs["notifier"])
	// The audit chain's panel has data only once the auditor's own scheduled verification
	// (AUDITOR_VERIFY_INTERVAL, at start-up and then hourly) has run: nothing else asks for one.
	startService(t, auditorBin, e, "auditor", addrs["auditor"])
	prom := startPrometheus(t, promBin, addrs)

	// Load: an open loop at a modest rate, long enough for every rate window to fill.
	load := startProcess(t, bins.annals, []string{"load", "--url", writer.url, "--rate", "40", "--duration", "60s", "--quiet"}, e.vars, "annals load")
	t.Cleanup(func() { load.stop(10 * time.Second) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pending := map[int]string{} // query index → why it has no data yet
	for i := range queries {
		pending[i] = "not run yet"
	}
	waitEvery(t, 100*time.Second, time.Second, "every dashboard query to return data during the load", func() bool {
		for i := range pending {
			q := queries[i]
			r, err := promQuery(ctx, prom, promQL(q.expr))
			switch {
			case err != nil:
				pending[i] = err.Error()
			case r.Status != "success":
				// A query that does not parse fails at once: waiting will not help.
				t.Fatalf("%s: %s: %s: %s", q.where, promQL(q.expr), r.ErrorType, r.Error)
			case !r.hasData():
				pending[i] = fmt.Sprintf("no data (%d series)", len(r.Data.Result))
			default:
				delete(pending, i)
			}
		}
		if load.exited() && len(pending) > 0 {
			for i, why := range pending {
				t.Errorf("%s: %s: %s", queries[i].where, promQL(queries[i].expr), why)
			}
			t.Fatalf("the load ended (%v) before every dashboard query returned data", load.err)
		}
		return len(pending) == 0
	})
	t.Logf("all %d dashboard queries returned data", len(queries))

	// Every rule loaded and evaluated without error; with the pipeline healthy, none is pending
	// or firing.
	var rr struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	code, body, err := get(ctx, prom+"/api/v1/rules")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/rules: %d %v", code, err)
	}
	if err := json.Unmarshal(body, &rr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s (group %s): health %s: %s", r.Name, g.Name, r.Health, r.LastError)
			}
			if r.State != "inactive" {
				t.Errorf("alert %s is %s on a healthy pipeline", r.Name, r.State)
			}
		}
	}
	if n == 0 {
		t.Fatal("Prometheus loaded no rules")
	}
	t.Logf("%d rules loaded and evaluated", n)
}

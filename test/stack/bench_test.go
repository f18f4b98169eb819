//go:build stack

package stack_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/cmd/annals/bench"
)

// TestBench_Quick runs `make bench-quick` (scripts/bench.sh --quick: the stack, the build,
// `annals bench --quick` and the plot) and checks what it leaves: a results.json with every
// figure, each Annals figure set against its baseline, every target judged, and a PNG plot.
// It checks that the benchmark runs whole, not how fast Annals is: the quick run's figures
// are too short to judge, and the machine is shared.
func TestBench_Quick(t *testing.T) {
	root := repoRoot(t)
	out := t.TempDir()
	cmd := exec.Command("scripts/bench.sh", "--quick")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ANNALS_BENCH_OUT="+out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("scripts/bench.sh --quick took %v; its table:\n%s", time.Since(start).Round(time.Second), stdout.String())
	if err != nil {
		t.Fatalf("scripts/bench.sh --quick: %v\n%s", err, tail(stderr.Bytes(), 4000))
	}
	if !strings.Contains(stdout.String(), "TARGETS:") {
		t.Errorf("no TARGETS line in the table")
	}

	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if !res.Quick || res.Machine.Cores == 0 || res.Machine.Postgres == "" || res.Machine.Kafka == "" {
		t.Errorf("results.json: quick %v, machine %+v; want a quick run on a described machine", res.Quick, res.Machine)
	}
	figures := map[string]bench.Figure{}
	for _, f := range res.Baselines {
		figures[f.ID] = f
	}
	for _, f := range res.Figures {
		figures[f.ID] = f
		if f.Baseline == nil || f.Ratio == nil || math.IsNaN(*f.Ratio) {
			t.Errorf("%s (%s) has no baseline or ratio", f.ID, f.Name)
		}
	}
	for _, id := range append(bench.FigureIDs(), bench.StoreFigureIDs("redis", "mongodb")...) {
		f, ok := figures[id]
		switch {
		case !ok:
			t.Errorf("results.json has no figure %s", id)
		case f.Unit == "" || math.IsNaN(f.Value) || f.Value < 0:
			t.Errorf("%s: %v %q", id, f.Value, f.Unit)
		// EndToEndLatency reports whole milliseconds: its p50 may be 0 on a fast machine.
		case f.Value == 0 && !strings.HasPrefix(id, "kafka.e2e."):
			t.Errorf("%s (%s) is 0 %s", id, f.Name, f.Unit)
		}
	}
	if got := res.TargetsMet + res.TargetsMissed; got != 14 {
		t.Errorf("%d targets judged, want 14", got)
	}

	f, err := os.Open(filepath.Join(out, "latency.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("latency.png: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 300 {
		t.Errorf("latency.png is %v, want a readable plot", r)
	}
}

package helmcheck

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// copies are the files the chart holds copies of, because Helm reads no file outside the
// chart: each original's folder and pattern, and the chart's folder for the copies.
var copies = []struct {
	source, pattern, dest string
}{
	{"deploy/grafana/dashboards", "*.json", "deploy/helm/annals/files/dashboards"},
	{"deploy/prometheus/rules", "annals.rules.yml", "deploy/helm/annals/files"},
}

// TestFilesInSync: every dashboard and the alert rules have a byte-identical copy in the
// chart, and the chart holds no copy whose original is gone. `make helm-sync` makes them so.
func TestFilesInSync(t *testing.T) {
	root := repoRoot(t)
	for _, c := range copies {
		sources, err := filepath.Glob(filepath.Join(root, c.source, c.pattern))
		if err != nil {
			t.Fatal(err)
		}
		if len(sources) == 0 {
			t.Errorf("no %s in %s", c.pattern, c.source)
		}
		for _, src := range sources {
			name := filepath.Base(src)
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, c.dest, name))
			switch {
			case os.IsNotExist(err):
				t.Errorf("%s/%s has no copy in %s: run make helm-sync", c.source, name, c.dest)
			case err != nil:
				t.Fatal(err)
			case !bytes.Equal(got, want):
				t.Errorf("%s/%s differs from %s/%s: run make helm-sync", c.dest, name, c.source, name)
			}
		}
		copied, err := filepath.Glob(filepath.Join(root, c.dest, c.pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, dst := range copied {
			if _, err := os.Stat(filepath.Join(root, c.source, filepath.Base(dst))); os.IsNotExist(err) {
				t.Errorf("%s/%s is a copy of nothing in %s: run make helm-sync", c.dest, filepath.Base(dst), c.source)
			}
		}
	}
}

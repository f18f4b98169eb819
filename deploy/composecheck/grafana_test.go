package composecheck

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

type grafanaDatasources struct {
	Datasources []struct {
		Name string `yaml:"name"`
		UID  string `yaml:"uid"`
		Type string `yaml:"type"`
		URL  string `yaml:"url"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	Providers []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// TestGrafana checks that the provisioned datasource points at the compose
// Prometheus, that the dashboards provider reads the folder compose mounts,
// and that the dashboards use that datasource and the scrape jobs
// Prometheus has.
func TestGrafana(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)
	grafana := service(t, p, "grafana")
	prom := service(t, p, "prometheus")

	const provisioning = "/etc/grafana/provisioning"
	mount, ok := mountAt(grafana, provisioning)
	if !ok || mount.Type != types.VolumeTypeBind {
		t.Fatalf("grafana: no bind mount at %s", provisioning)
	}
	if want := filepath.Join(root, "deploy", "grafana", "provisioning"); mount.Source != want {
		t.Errorf("grafana: provisioning mounted from %s, want %s", mount.Source, want)
	}
	if !publishes(grafana, 3000) {
		t.Errorf("grafana: port 3000 is not published")
	}

	// Datasources.
	var uids []string
	for _, path := range yamlFiles(t, filepath.Join(mount.Source, "datasources")) {
		var ds grafanaDatasources
		readYAML(t, path, &ds)
		for _, d := range ds.Datasources {
			if d.Type != "prometheus" {
				continue
			}
			uids = append(uids, d.UID)
			u, err := url.Parse(d.URL)
			if err != nil {
				t.Errorf("%s: datasource %s: %v", path, d.Name, err)
				continue
			}
			port, _ := strconv.Atoi(u.Port())
			if u.Hostname() != prom.Name || !exposesPort(prom, port) {
				t.Errorf("%s: datasource %s points at %s, not at the prometheus service's port", path, d.Name, d.URL)
			}
		}
	}
	if len(uids) == 0 || slices.Contains(uids, "") {
		t.Fatalf("no Prometheus datasource with a uid under deploy/grafana/provisioning/datasources (uids %q)", uids)
	}

	// Dashboard providers.
	var dashboardDirs []string
	for _, path := range yamlFiles(t, filepath.Join(mount.Source, "dashboards")) {
		var pr grafanaProviders
		readYAML(t, path, &pr)
		for _, prov := range pr.Providers {
			if prov.Type != "file" {
				continue
			}
			m, ok := mountAt(grafana, prov.Options.Path)
			if !ok {
				t.Errorf("%s: provider %s reads %s, which compose does not mount", path, prov.Name, prov.Options.Path)
				continue
			}
			if m.Source != filepath.Join(root, "deploy", "grafana", "dashboards") {
				t.Errorf("grafana: %s is mounted from %s, want deploy/grafana/dashboards", prov.Options.Path, m.Source)
			}
			dashboardDirs = append(dashboardDirs, m.Source)
		}
	}
	if len(dashboardDirs) == 0 {
		t.Fatal("no file dashboard provider under deploy/grafana/provisioning/dashboards")
	}

	// Dashboards.
	promMount, _ := mountAt(prom, "/etc/prometheus/prometheus.yml")
	jobs := readPrometheusConfig(t, promMount.Source).jobs()
	jobRE := regexp.MustCompile(`job\s*=~?\s*"([^"]*)"`)
	seenUIDs := map[string]string{}
	for _, dir := range dashboardDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("no dashboard JSON in %s", dir)
		}
		for _, path := range files {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var dash map[string]any
			if err := json.Unmarshal(data, &dash); err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			uid, _ := dash["uid"].(string)
			if uid == "" {
				t.Errorf("%s: dashboard has no uid", path)
			} else if other, dup := seenUIDs[uid]; dup {
				t.Errorf("%s and %s share the dashboard uid %s", path, other, uid)
			}
			seenUIDs[uid] = path
			if panels, _ := dash["panels"].([]any); len(panels) == 0 {
				t.Errorf("%s: dashboard has no panels", path)
			}
			walkJSON(dash, func(key string, v any) {
				switch key {
				case "datasource":
					ref, ok := v.(map[string]any)
					if !ok {
						return
					}
					u, _ := ref["uid"].(string)
					if ref["type"] == "prometheus" && !strings.HasPrefix(u, "$") && !slices.Contains(uids, u) {
						t.Errorf("%s: datasource uid %q is not provisioned (have %q)", path, u, uids)
					}
				case "expr", "query", "definition":
					s, ok := v.(string)
					if !ok {
						return
					}
					for _, m := range jobRE.FindAllStringSubmatch(s, -1) {
						if !slices.Contains(jobs, m[1]) {
							t.Errorf("%s: query %q selects job %q; prometheus.yml has jobs %q", path, s, m[1], jobs)
						}
					}
				}
			})
		}
	}
}

func yamlFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"*.yml", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Errorf("no YAML files in %s", dir)
	}
	return out
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// walkJSON calls fn for every key and value of a decoded JSON document.
func walkJSON(v any, fn func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			fn(k, child)
			walkJSON(child, fn)
		}
	case []any:
		for _, child := range x {
			walkJSON(child, fn)
		}
	}
}

// dashboardMetrics returns the metric names the dashboards query that every
// service exports whatever it can reach: the Go, process and /metrics handler
// collectors' and the HTTP server's. The others belong to one service each and
// appear once it works against PostgreSQL and Kafka; the stack tests check them
// against a real Prometheus.
func dashboardMetrics(t testing.TB, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	selector := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
	seen := map[string]bool{}
	var out []string
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var dash any
		if err := json.Unmarshal(data, &dash); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		walkJSON(dash, func(key string, v any) {
			s, ok := v.(string)
			if key != "expr" || !ok {
				return
			}
			for _, m := range selector.FindAllStringSubmatch(s, -1) {
				if name := m[1]; everyService(name) && !seen[name] {
					seen[name] = true
					out = append(out, name)
				}
			}
		})
	}
	slices.Sort(out)
	return out
}

// everyService reports whether every service exports the metric name.
func everyService(name string) bool {
	for _, prefix := range []string{"go_", "process_", "promhttp_", "annals_http_", "annals_service_info"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

package config_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/annals-dev/annals/internal/config"
)

// TestREADMETable keeps the README's configuration table true: one row per key, with the
// key's environment variable, path and default.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| `([a-z_.]+)` \\| *(?:`([^`]*)`)? *\\|")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		if _, dup := rows[m[1]]; dup {
			t.Errorf("README lists %s twice", m[1])
		}
		rows[m[1]] = [2]string{m[2], m[3]}
	}
	for _, k := range config.Keys() {
		got, ok := rows[k.Env]
		if !ok {
			t.Errorf("README's configuration table lacks %s (%s)", k.Env, k.Path())
			continue
		}
		if got[0] != k.Path() || got[1] != k.Default {
			t.Errorf("README: %s = key %q default %q, want key %q default %q", k.Env, got[0], got[1], k.Path(), k.Default)
		}
		delete(rows, k.Env)
	}
	for env := range rows {
		t.Errorf("README documents %s, which the configuration does not know", env)
	}
}

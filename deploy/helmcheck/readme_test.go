package helmcheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readmeTable returns the rows of the README table whose header's first cell is first: the
// first cell (without its backticks) to the second.
func readmeTable(tb testing.TB, first string) ([]string, map[string]string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(tb), "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	var keys []string
	cells := map[string]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			in = false
			continue
		}
		row := strings.Split(strings.Trim(line, "|"), "|")
		for i := range row {
			row[i] = strings.TrimSpace(row[i])
		}
		switch {
		case row[0] == first:
			in = true
		case !in || strings.HasPrefix(row[0], "---"):
		case len(row) < 2:
			tb.Errorf("README.md: a row with one cell: %s", line)
		default:
			key := strings.Trim(row[0], "`")
			if _, dup := cells[key]; dup {
				tb.Errorf("README.md: %s is listed twice", key)
			}
			keys = append(keys, key)
			cells[key] = strings.Trim(row[1], "`")
		}
	}
	if len(keys) == 0 {
		tb.Fatalf("README.md has no table headed %q", first)
	}
	return keys, cells
}

// leaves collects the leaves of a values map into out, by dotted path: a leaf is a scalar, a
// list or an empty map.
func leaves(prefix string, v map[string]any, out map[string]any) {
	for k, x := range v {
		p := join(prefix, k)
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			leaves(p, m, out)
			continue
		}
		out[p] = x
	}
}

// TestReadme_Values: the README's values table has one row per leaf of values.yaml, and
// each row's default is the value's, as JSON.
func TestReadme_Values(t *testing.T) {
	keys, defaults := readmeTable(t, "key")
	vals := map[string]any{}
	leaves("", readValuesFile(t, filepath.Join(chartDir(t), "values.yaml")), vals)
	for key, v := range vals {
		got, ok := defaults[key]
		if !ok {
			t.Errorf("README.md: the values table does not list %s", key)
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(buf.String()); got != want {
			t.Errorf("README.md: %s defaults to %s in values.yaml, the table says %s", key, want, got)
		}
	}
	for _, key := range keys {
		if _, ok := vals[key]; !ok {
			t.Errorf("README.md: the values table lists %s, which values.yaml does not have", key)
		}
	}
}

// TestReadme_Config: the README lists exactly the configuration keys config accepts.
func TestReadme_Config(t *testing.T) {
	keys, _ := readmeTable(t, "variable")
	var want []string
	for k := range readSchema(t).Properties["config"].Properties {
		want = append(want, k)
	}
	slices.Sort(want)
	slices.Sort(keys)
	for _, k := range want {
		if !slices.Contains(keys, k) {
			t.Errorf("README.md: the configuration table does not list %s, which config accepts", k)
		}
	}
	for _, k := range keys {
		if !slices.Contains(want, k) {
			t.Errorf("README.md: the configuration table lists %s, which config does not accept", k)
		}
	}
}

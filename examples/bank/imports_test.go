package bank_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/annals-dev/annals"

// forbidden returns "<package> imports <forbidden>" for every import, in the lines of
// `go list -f '{{.ImportPath}}:{{join .Imports " "}}'`, of a package under the module's
// internal/ or services/ folders.
func forbidden(lines []string) []string {
	var bad []string
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ":")
		for imp := range strings.FieldsSeq(imports) {
			if strings.HasPrefix(imp, module+"/internal/") || strings.HasPrefix(imp, module+"/services/") ||
				imp == module+"/internal" || imp == module+"/services" {
				bad = append(bad, pkg+" imports "+imp)
			}
		}
	}
	return bad
}

// TestImports checks that the example, tests included, depends on the public library only:
// no package it reaches, directly or not, is under the module's internal/ or services/.
func TestImports(t *testing.T) {
	t.Run("Forbidden", func(t *testing.T) { // the check itself catches what it must
		got := forbidden([]string{
			module + "/examples/bank:" + module + "/pkg/events encoding/json",
			module + "/pkg/relay:" + module + "/internal/wiring",
			module + "/examples/bank/x:" + module + "/services/writer/api",
		})
		want := []string{
			module + "/pkg/relay imports " + module + "/internal/wiring",
			module + "/examples/bank/x imports " + module + "/services/writer/api",
		}
		if !slices.Equal(got, want) {
			t.Errorf("forbidden = %q, want %q", got, want)
		}
	})
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs the go command, which is not on PATH: %v", err)
	}
	// The test runs in examples/bank, so ./... is every package of the example.
	out, err := exec.Command(goTool, "list", "-deps", "-test", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var example []string
	for _, line := range lines {
		if pkg, _, _ := strings.Cut(line, ":"); strings.HasPrefix(pkg, module+"/examples/bank") && !strings.Contains(pkg, " ") && !strings.HasSuffix(pkg, ".test") {
			example = append(example, pkg)
		}
	}
	for _, want := range []string{"", "/balances", "/httpapi", "/service", "/cmd/bankd"} {
		if !slices.Contains(example, module+"/examples/bank"+want) {
			t.Errorf("go list did not list %s/examples/bank%s (listed %q)", module, want, example)
		}
	}
	for _, b := range forbidden(lines) {
		t.Errorf("%s: the example must build on pkg/ only", b)
	}
}

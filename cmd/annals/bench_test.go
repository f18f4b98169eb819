package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBench_Usage: a command line that does not parse is a usage error; the run itself is
// exercised by test/stack's TestBench_Quick.
func TestBench_Usage(t *testing.T) {
	for _, args := range [][]string{{"bench", "now"}, {"bench", "--quick=maybe"}} {
		code, _, errOut := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(errOut, "usage: annals") {
			t.Errorf("annals %s = %d, want 2 with the usage:\n%s", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestPGMajor(t *testing.T) {
	for _, tc := range []struct {
		path string
		want int
	}{
		{filepath.FromSlash("/usr/lib/postgresql/15/bin/pgbench"), 15},
		{filepath.FromSlash("/usr/lib/postgresql/9.6/bin/pgbench"), 9},
		{filepath.FromSlash("/usr/lib/postgresql/dev/bin/pgbench"), 0},
	} {
		if got := pgMajor(tc.path); got != tc.want {
			t.Errorf("pgMajor(%s) = %d, want %d", tc.path, got, tc.want)
		}
	}
}

//go:build stack

package stack_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/shred"
)

// The OpenAPI documents against the servers behind them: Schemathesis, a third-party fuzzer,
// generates requests from each service's /openapi.json, valid and invalid ones, and runs all
// its checks on the answers. A schema-valid request that the server refuses, a schema-invalid
// one that it accepts, a 5xx or an answer that the document does not describe is a failure:
// the document must say exactly what the server takes. The documents declare the bearer
// scheme and each operation's scope; Schemathesis sends the API key where it is needed and
// checks that the protected operations refuse requests without it or with a wrong one.

// schemathesisExamples bounds the test cases per operation and phase, so that the four
// services take a couple of minutes together.
const schemathesisExamples = 25

// schemathesisBin is Schemathesis's command, st: $ANNALS_SCHEMATHESIS when set, else the
// virtualenv that `scripts/stack.sh install schemathesis` makes in the stack's cache, else st
// on PATH.
func schemathesisBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ANNALS_SCHEMATHESIS"); bin != "" {
		return bin
	}
	cache := os.Getenv("ANNALS_CACHE_DIR")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err == nil {
			cache = filepath.Join(base, "annals")
		}
	}
	if cache != "" {
		bin := filepath.Join(cache, "schemathesis", "bin", "st")
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	if bin, err := exec.LookPath("st"); err == nil {
		return bin
	}
	t.Fatal("Schemathesis is not installed: run scripts/stack.sh install schemathesis (make test does), " +
		"or set ANNALS_SCHEMATHESIS to its st command")
	return ""
}

func TestOpenAPI_Schemathesis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Schemathesis against the four services: not with -short")
	}
	st := schemathesisBin(t)
	// The configuration file gives the documents' bearer scheme the API key of TestMain, read
	// from the environment, so that the key stays off the command line and out of the output.
	if os.Getenv("ANNALS_API_KEY") == "" {
		t.Fatal("ANNALS_API_KEY is not set: Schemathesis sends it to the operations that need the bearer scheme")
	}
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)

	// The writer, the projector and the auditor share a deployment, so that the read APIs
	// answer rows the fuzzer's commands made. The notifier runs in one of its own, on which no
	// event is ever published: the fuzzer's users have addresses of its choosing, and no
	// email goes to them.
	e := newFaultEnv(t)
	// Users' personal data is recorded encrypted, as a deployment that can erase it runs: so
	// the fuzzer's DELETE /v1/users/{id}/personal-data erases (or finds no user) rather than
	// answering 409 personal_data_not_encrypted to every valid request.
	key, err := shred.NewKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	e.vars["PERSONAL_DATA_KEY_FILE"] = filepath.Join(t.TempDir(), "personal-data.key")
	if err := os.WriteFile(e.vars["PERSONAL_DATA_KEY_FILE"], key, 0o600); err != nil {
		t.Fatal(err)
	}
	services := []*service{
		startService(t, bins.writer, e, "writer", freeAddr(t)),
		startService(t, bins.projector, e, "projector", freeAddr(t)),
		startService(t, auditorBin, e, "auditor", freeAddr(t)),
	}
	quiet := newFaultEnv(t)
	quiet.vars["SMTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	services = append(services, startService(t, notifierBin, quiet, "notifier", freeAddr(t)))

	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			testdata := filepath.Join(repoRoot(t), "test", "stack", "testdata")
			args := []string{"--config-file", filepath.Join(testdata, "schemathesis.toml"),
				"run", s.url + "/openapi.json", "--url", s.url,
				"--checks", "all", "--max-examples", strconv.Itoa(schemathesisExamples),
				"--workers", "1", "--seed", strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10),
				"--request-timeout", "30",
			}
			cmd := exec.CommandContext(ctx, st, append([]string{"--no-color"}, args...)...)
			cmd.Dir = t.TempDir() // its report folder, if any
			// The hooks keep the fuzzer from breaking rules that relate two parameters, which
			// OpenAPI cannot express, make its idempotency keys unique, shorten the read
			// models' waits, and check that a 422 to valid data is a rule the operation can break.
			cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=schemathesis_hooks", "PYTHONPATH="+testdata, "NO_COLOR=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("st %v: %v\n%s", args, err, out)
			}
			t.Logf("st: no failure\n%s", tail(out, 1500))
		})
	}
}

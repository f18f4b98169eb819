package helmcheck

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// goBuild builds a package of this module's build list (or a program of the main module, in
// that module) into dir and returns the binary.
// Go's build cache makes a rebuild quick once the first one is done.
func goBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = ".." // the deploy module, whose go.mod pins the version
	if rest, ok := strings.CutPrefix(pkg, modulePath+"/"); ok {
		// A program of the main module builds in that module, with its own go.sum.
		cmd = exec.CommandContext(ctx, "go", "build", "-o", bin, "./"+rest)
		cmd.Dir = "../.."
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestHelmLint runs `helm lint` on the chart, plain, with --strict, and with each example,
// with the helm command of the Helm version this module requires.
func TestHelmLint(t *testing.T) {
	t.Parallel()
	helm := goBuild(t, "helm.sh/helm/v3/cmd/helm", "helm")
	home := t.TempDir()
	env := append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	dir := chartDir(t)
	runs := [][]string{{"lint", dir}, {"lint", "--strict", dir}}
	for _, ex := range examples(t) {
		runs = append(runs, []string{"lint", "--strict", dir, "-f", ex})
	}
	for _, args := range runs {
		cmd := exec.Command(helm, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if !bytes.Contains(out, []byte("0 chart(s) failed")) {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestCommandsExist: the CLI commands that the migration Job and the test pod run exist in
// cmd/annals. Each runs with a configuration file that does not exist: a command the CLI
// knows fails on the configuration (or, for probe, on the connection) with status 1, while
// an unknown one fails with its usage and status 2.
func TestCommandsExist(t *testing.T) {
	t.Parallel()
	annals := goBuild(t, modulePath+"/cmd/annals", "annals")
	rel := mustRender(t, nil)
	var runs [][]string
	for _, j := range objectsOf[*batchv1.Job](rel) {
		spec := j.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			runs = append(runs, append([]string{"-config", filepath.Join(t.TempDir(), "absent.tsk")}, c.Args...))
		}
	}
	for _, p := range objectsOf[*corev1.Pod](rel) {
		args := p.Spec.Containers[0].Args
		if len(args) != 2 || args[0] != "probe" {
			t.Fatalf("test pod args %v, want [probe URL]", args)
		}
		// Port 1 on the loopback refuses at once; the Service's name would not resolve here.
		runs = append(runs, []string{"probe", "http://127.0.0.1:1/readyz"})
	}
	if len(runs) != len(migrationSteps)+1 {
		t.Fatalf("%d commands to check, want the %d migration steps and the probe", len(runs), len(migrationSteps))
	}
	for _, args := range runs {
		var stderr bytes.Buffer
		cmd := exec.Command(annals, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			t.Errorf("annals %s succeeded without a configuration file or a server", strings.Join(args, " "))
		case !errors.As(err, &exit):
			t.Fatalf("annals %s: %v", strings.Join(args, " "), err)
		case exit.ExitCode() != 1 || strings.Contains(stderr.String(), "usage"):
			t.Errorf("annals %s: status %d, the CLI does not know the command:\n%s", strings.Join(args, " "), exit.ExitCode(), stderr.String())
		case args[0] == "-config" && !strings.Contains(stderr.String(), "configuration"):
			t.Errorf("annals %s failed before reading its configuration:\n%s", strings.Join(args, " "), stderr.String())
		}
	}
}

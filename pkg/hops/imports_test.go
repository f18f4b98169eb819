package hops_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// sdkPackages returns the packages of OpenTelemetry's SDK and exporters (and gRPC, which the
// exporters bring) among deps.
func sdkPackages(deps []string) []string {
	var bad []string
	for _, p := range deps {
		if strings.HasPrefix(p, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(p, "go.opentelemetry.io/otel/exporters") ||
			strings.HasPrefix(p, "google.golang.org/grpc") {
			bad = append(bad, p)
		}
	}
	return bad
}

// TestLibraryUsesTheAPIOnly: no package of pkg/ reaches OpenTelemetry's SDK or an exporter,
// directly or not (their tests may); choosing those is a program's business.
func TestLibraryUsesTheAPIOnly(t *testing.T) {
	if got := sdkPackages([]string{"go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/sdk/trace", "google.golang.org/grpc/codes"}); !slices.Equal(got,
		[]string{"go.opentelemetry.io/otel/sdk/trace", "google.golang.org/grpc/codes"}) {
		t.Fatalf("the check itself: %q", got)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs the go command, which is not on PATH: %v", err)
	}
	// The test runs in pkg/hops: ../... is every package of pkg/.
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "go.opentelemetry.io/otel/trace") {
		t.Fatalf("go list did not list the OpenTelemetry API among pkg/'s dependencies: %q", deps)
	}
	for _, p := range sdkPackages(deps) {
		t.Errorf("pkg/ depends on %s: the library may use OpenTelemetry's API only", p)
	}
}

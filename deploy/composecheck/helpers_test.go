package composecheck

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/annals-dev/annals/internal/app"
)

// appService is one of the four Annals services as docker-compose.yml runs it.
type appService struct {
	Name string // compose service name, also the binary's suffix
	Port int    // default HTTP port: what the service listens on without HTTP_ADDR
}

// Binary is the service's executable name inside the image.
func (s appService) Binary() string { return "annals-" + s.Name }

// appServices lists the services with their default HTTP ports, as the
// services themselves define them.
var appServices = func() []appService {
	var out []appService
	for _, s := range app.Services() {
		out = append(out, appService{Name: s.Name, Port: s.DefaultPort})
	}
	return out
}()

const (
	modulePath = "github.com/annals-dev/annals"

	// imageBinDir is where the runtime image keeps every binary.
	imageBinDir = "/usr/local/bin"
	// cliBinary is the admin CLI's executable name; `annals probe URL` is the
	// containers' health check.
	cliBinary = "annals"
)

// oneShotServices run one CLI command each to completion before the
// services start.
var oneShotServices = []string{"topics", "init"}

// annalsContainers are the compose services that run the Annals image.
func annalsContainers() []string {
	names := append([]string{}, oneShotServices...)
	for _, s := range appServices {
		names = append(names, s.Name)
	}
	return names
}

// imageBinaries are the executables the Dockerfile's build stage must produce.
func imageBinaries() []string {
	names := []string{cliBinary}
	for _, s := range appServices {
		names = append(names, s.Binary())
	}
	return names
}

// repoRoot is the root of the annals module: two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if got := goModDirective(data, "module"); got != modulePath {
		t.Fatalf("%s/go.mod declares module %q, want %q", root, got, modulePath)
	}
	return root
}

// goModDirective returns the argument of the first line of a go.mod that
// starts with the directive ("module", "go").
func goModDirective(gomod []byte, directive string) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == directive {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

// loadCompose loads docker-compose.yml the way `docker compose` does, with
// paths resolved against the repository root. The host environment is not
// used, so the result is the same on every machine.
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return project
}

// service returns a compose service or stops the test.
func service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

// environment returns a service's environment. A variable without a value
// would be copied from the host of `docker compose`, which the stack must not
// depend on.
func environment(t testing.TB, s types.ServiceConfig) map[string]string {
	t.Helper()
	env := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("service %s: %s has no value (it would be taken from the host's environment)", s.Name, k)
			continue
		}
		env[k] = *v
	}
	return env
}

// lookupIn turns an environment map into a lookupEnv function.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// splitHostPort splits "host:port" (host may be empty) into its parts.
func splitHostPort(t testing.TB, what, addr string) (string, int) {
	t.Helper()
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: %q is not host:port: %v", what, addr, err)
		return "", 0
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		t.Errorf("%s: %q has no valid port", what, addr)
		return host, 0
	}
	return host, port
}

// publishes reports whether a service publishes container port target on the
// same host port.
func publishes(s types.ServiceConfig, target int) bool {
	for _, p := range s.Ports {
		if int(p.Target) == target && p.Published == strconv.Itoa(target) {
			return true
		}
	}
	return false
}

// exposesPort reports whether a service publishes container port target.
func exposesPort(s types.ServiceConfig, target int) bool {
	for _, p := range s.Ports {
		if int(p.Target) == target {
			return true
		}
	}
	return false
}

// mountAt returns the service's volume mounted at target.
func mountAt(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

package composecheck

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/annals-dev/annals/internal/config"
)

const (
	buildStageName   = "build"
	runtimeBaseImage = "gcr.io/distroless/static-debian12:nonroot"
	// outDirArg is the build argument naming the folder the build stage
	// writes the binaries to; the build test points it at a temporary folder.
	outDirArg = "OUT_DIR"
	// versionArg is the build argument stamped into the binaries.
	versionArg = "VERSION"
	// configInImage is where the image keeps the default configuration file.
	configInImage = "/etc/annals/event_sourcing.tsk"
	// testVersion is the VERSION the build test stamps into the binaries.
	testVersion = "0.0.0-composecheck"
)

type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with their defaults
}

// parseDockerfile parses the repository's Dockerfile with BuildKit's parser
// and fails on the parser's and linter's warnings.
func parseDockerfile(t testing.TB) dockerfile {
	t.Helper()
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{
		Warn: func(rule, _, _, msg string, loc []parser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			t.Errorf("Dockerfile:%d: %s: %s", line, rule, msg)
		},
	})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	d := dockerfile{stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			d.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return d
}

func (d dockerfile) stage(t testing.TB, name string) instructions.Stage {
	t.Helper()
	for _, s := range d.stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return instructions.Stage{}
}

// final is the stage `docker build` produces without --target.
func (d dockerfile) final() instructions.Stage { return d.stages[len(d.stages)-1] }

// expand substitutes $NAME and ${NAME} from vars.
func expand(s string, vars map[string]string) string {
	return os.Expand(s, func(name string) string { return vars[name] })
}

// stageVars returns the ARG and ENV values in force at the end of a stage:
// meta ARG defaults for the ARGs the stage declares, the stage's own ARG
// defaults and its ENV, with overrides taking precedence for ARGs.
func (d dockerfile) stageVars(s instructions.Stage, overrides map[string]string) map[string]string {
	vars := map[string]string{}
	for _, cmd := range s.Commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				vars[kv.Key] = d.argValue(kv, vars, overrides)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				vars[kv.Key] = expand(kv.Value, vars)
			}
		}
	}
	return vars
}

func (d dockerfile) argValue(kv instructions.KeyValuePairOptional, vars, overrides map[string]string) string {
	if v, ok := overrides[kv.Key]; ok {
		return v
	}
	if kv.Value != nil {
		return expand(*kv.Value, vars)
	}
	return d.metaArgs[kv.Key]
}

func runCommands(s instructions.Stage) []*instructions.RunCommand {
	var out []*instructions.RunCommand
	for _, cmd := range s.Commands {
		if r, ok := cmd.(*instructions.RunCommand); ok {
			out = append(out, r)
		}
	}
	return out
}

func commandText(r *instructions.RunCommand) string { return strings.Join(r.CmdLine, " ") }

// TestDockerfile checks the Dockerfile's structure without building it.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	d := parseDockerfile(t)
	build := d.stage(t, buildStageName)
	runtime := d.final()
	if runtime.Name == buildStageName {
		t.Fatal("the build stage is the Dockerfile's last stage; the image would carry the toolchain")
	}

	t.Run("build stage base", func(t *testing.T) {
		base := expand(build.BaseName, d.metaArgs)
		gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		goVersion := goModDirective(gomod, "go")
		if parts := strings.SplitN(goVersion, ".", 3); len(parts) >= 2 {
			goVersion = parts[0] + "." + parts[1]
		}
		if want := "golang:" + goVersion; !strings.HasPrefix(base, want) {
			t.Errorf("build stage FROM %s, want %s (go.mod's Go version)", base, want)
		}
		if !strings.Contains(base, "bookworm") {
			t.Errorf("build stage FROM %s, want the bookworm variant (the runtime is debian12)", base)
		}
	})

	t.Run("build commands", func(t *testing.T) {
		var download, builds []string
		for _, r := range runCommands(build) {
			text := commandText(r)
			if strings.Contains(text, "go mod download") {
				download = append(download, text)
			}
			if strings.Contains(text, "go build") {
				builds = append(builds, text)
			}
		}
		if len(download) != 1 {
			t.Errorf("want one RUN with go mod download, have %d", len(download))
		}
		if len(builds) != 1 {
			t.Fatalf("want one RUN building every binary, have %d: %q", len(builds), builds)
		}
		text := builds[0]
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`, "$" + outDirArg} {
			if !strings.Contains(text, want) {
				t.Errorf("build command lacks %s: %s", want, text)
			}
		}
		for _, pkg := range []string{"./cmd/annals"} {
			if !strings.Contains(text, pkg) {
				t.Errorf("build command does not build %s", pkg)
			}
		}
		for _, a := range appServices {
			if !strings.Contains(text, "./services/"+a.Name) {
				t.Errorf("build command does not build ./services/%s", a.Name)
			}
		}
	})

	t.Run("modules are downloaded before the source is copied", func(t *testing.T) {
		// Layer order: COPY go.mod go.sum, RUN go mod download, COPY . .
		var order []string
		for _, cmd := range build.Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if slices.Contains(c.SourcePaths, ".") {
					order = append(order, "source")
				} else if slices.Contains(c.SourcePaths, "go.mod") && slices.Contains(c.SourcePaths, "go.sum") {
					order = append(order, "go.mod")
				}
			case *instructions.RunCommand:
				if strings.Contains(commandText(c), "go mod download") {
					order = append(order, "download")
				}
			}
		}
		if !slices.Equal(order, []string{"go.mod", "download", "source"}) {
			t.Errorf("build stage order %v, want [go.mod download source]", order)
		}
	})

	t.Run("runtime stage", func(t *testing.T) {
		if runtime.BaseName != runtimeBaseImage {
			t.Errorf("runtime stage FROM %s, want %s", runtime.BaseName, runtimeBaseImage)
		}
		if r := runCommands(runtime); len(r) > 0 {
			t.Errorf("runtime stage has RUN %q; its base has no shell", commandText(r[0]))
		}
		user := ""
		var copiedBinaries, copiedConfig bool
		buildOut := d.stageVars(build, nil)[outDirArg]
		vars := d.stageVars(runtime, nil)
		for _, cmd := range runtime.Commands {
			switch c := cmd.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.CopyCommand:
				dest := expand(c.DestPath, vars)
				for _, src := range c.SourcePaths {
					src = expand(src, vars)
					switch {
					case c.From == buildStageName && path.Clean(src) == path.Clean(buildOut):
						copiedBinaries = true
						if path.Clean(dest) != imageBinDir {
							t.Errorf("binaries copied to %s, want %s", dest, imageBinDir)
						}
					case c.From == "" && src == "config/event_sourcing.tsk":
						copiedConfig = true
						if dest != configInImage {
							t.Errorf("configuration copied to %s, want %s", dest, configInImage)
						}
						if _, err := os.Stat(filepath.Join(root, src)); err != nil {
							t.Errorf("COPY %s: %v", src, err)
						}
					}
				}
			}
		}
		if !copiedBinaries {
			t.Errorf("runtime stage does not copy the build stage's %s", buildOut)
		}
		if !copiedConfig {
			t.Error("runtime stage does not copy config/event_sourcing.tsk")
		}
		if got := vars[config.PathEnv]; got != configInImage {
			t.Errorf("%s=%q, want %s", config.PathEnv, got, configInImage)
		}
		// distroless' nonroot tag runs as 65532 already; an explicit USER
		// keeps it so and lets Kubernetes' runAsNonRoot verify a numeric id.
		name, _, _ := strings.Cut(user, ":")
		if name == "" || name == "root" || name == "0" {
			t.Errorf("runtime stage USER %q; the image must run as a non-root user", user)
		}

		var entrypoint []string
		for _, cmd := range runtime.Commands {
			if c, ok := cmd.(*instructions.EntrypointCommand); ok {
				entrypoint = c.CmdLine
				if c.PrependShell {
					t.Errorf("ENTRYPOINT in shell form needs a shell, which the runtime image lacks")
				}
			}
		}
		if len(entrypoint) == 0 || path.Dir(entrypoint[0]) != imageBinDir || !slices.Contains(imageBinaries(), path.Base(entrypoint[0])) {
			t.Errorf("ENTRYPOINT %q is not one of the image's binaries", entrypoint)
		}
	})

	t.Run("build context keeps what the build needs", func(t *testing.T) {
		pm := dockerignore(t, root)
		for _, need := range []string{"go.mod", "go.sum", "config/event_sourcing.tsk", "cmd/annals", "services", "internal", "pkg"} {
			if excluded, err := pm.MatchesOrParentMatches(need); err != nil || excluded {
				t.Errorf(".dockerignore excludes %s", need)
			}
		}
		for _, drop := range []string{".git", ".stack", "bin"} {
			if excluded, _ := pm.MatchesOrParentMatches(drop); !excluded {
				t.Errorf(".dockerignore does not exclude %s", drop)
			}
		}
	})
}

// TestDockerfileBuild replays the Dockerfile's build stage on this machine:
// the build context is assembled in a temporary folder as .dockerignore
// filters it, WORKDIR and COPY act inside another temporary folder standing
// for the stage's file system, and each RUN command's text runs unchanged
// with `sh -c`. Only the OUT_DIR build argument differs: it names a
// temporary folder, as the commands run on the host. The binaries must then
// be static executables, and `annals probe` must work as the containers'
// health check.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary; skipped with -short")
	}
	root := repoRoot(t)
	d := parseDockerfile(t)
	build := d.stage(t, buildStageName)

	contextDir := t.TempDir()
	copyContext(t, root, contextDir, dockerignore(t, root))
	fsRoot := t.TempDir()
	outDir := t.TempDir()

	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}

	overrides := map[string]string{outDirArg: outDir, versionArg: testVersion}
	vars := map[string]string{}
	workdir := "/"
	ran := 0
	for _, cmd := range build.Commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				vars[kv.Key] = d.argValue(kv, vars, overrides)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				vars[kv.Key] = expand(kv.Value, vars)
			}
		case *instructions.WorkdirCommand:
			workdir = path.Join(workdir, expand(c.Path, vars))
			if err := os.MkdirAll(filepath.Join(fsRoot, workdir), 0o755); err != nil {
				t.Fatal(err)
			}
		case *instructions.CopyCommand:
			if c.From != "" {
				t.Fatalf("build stage: COPY --from=%s is not replayed", c.From)
			}
			dest := expand(c.DestPath, vars)
			intoDir := strings.HasSuffix(dest, "/") || len(c.SourcePaths) > 1
			if !path.IsAbs(dest) {
				dest = path.Join(workdir, dest)
			}
			hostDest := filepath.Join(fsRoot, filepath.FromSlash(dest))
			for _, src := range c.SourcePaths {
				copyInto(t, contextDir, expand(src, vars), hostDest, intoDir)
			}
		case *instructions.RunCommand:
			if len(c.Files) > 0 {
				t.Fatalf("build stage: RUN with heredocs is not replayed")
			}
			var argv []string
			if c.PrependShell {
				argv = []string{"sh", "-c", commandText(c)}
			} else {
				argv = c.CmdLine
			}
			t.Logf("RUN %s", commandText(c))
			start := time.Now()
			run := exec.CommandContext(ctx, argv[0], argv[1:]...)
			run.Dir = filepath.Join(fsRoot, filepath.FromSlash(workdir))
			run.Env = buildEnv(vars)
			out, err := run.CombinedOutput()
			if err != nil {
				t.Fatalf("RUN %s: %v\n%s", commandText(c), err, out)
			}
			t.Logf("done in %s", time.Since(start).Round(time.Second))
			ran++
		case *instructions.LabelCommand, *instructions.ExposeCommand:
		default:
			t.Fatalf("build stage: %s is not replayed by this test", cmd.Name())
		}
	}
	if ran == 0 {
		t.Fatal("build stage has no RUN")
	}

	for _, name := range imageBinaries() {
		bin := filepath.Join(outDir, name)
		t.Run(name, func(t *testing.T) { checkStaticBinary(t, bin) })
	}
	if entries, err := os.ReadDir(outDir); err == nil && len(entries) != len(imageBinaries()) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want exactly %v (it is copied whole into the image)", outDirArg, names, imageBinaries())
	}

	cli := filepath.Join(outDir, cliBinary)
	t.Run("annals version", func(t *testing.T) {
		out, err := exec.Command(cli, "version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != testVersion {
			t.Errorf("annals version: %q (%v), want the %s build argument %q", out, err, versionArg, testVersion)
		}
	})
	t.Run("annals probe", func(t *testing.T) { checkProbe(t, cli) })
	t.Run("CLI commands run by compose", func(t *testing.T) {
		out, _ := exec.Command(cli, "help").CombinedOutput()
		commands := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "  ") {
				if f := strings.Fields(line); len(f) > 0 {
					commands[f[0]] = true
				}
			}
		}
		p := loadCompose(t)
		for _, name := range oneShotServices {
			cmd := service(t, p, name).Command
			if len(cmd) > 0 && !commands[cmd[0]] {
				t.Errorf("service %s runs `annals %s`, which `annals help` does not list:\n%s", name, strings.Join(cmd, " "), out)
			}
		}
	})
	t.Run("services", func(t *testing.T) {
		p := loadCompose(t)
		metrics := dashboardMetrics(t, root)
		for _, a := range appServices {
			t.Run(a.Name, func(t *testing.T) {
				checkService(t, filepath.Join(outDir, a.Binary()), environment(t, service(t, p, a.Name)), root, metrics)
			})
		}
	})
}

// buildEnv is the environment of a replayed RUN: this machine's, less the
// variables that would change what `go` builds (the build image has none of
// them), plus the stage's ARG and ENV values.
func buildEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS", "GOWORK", "GOEXPERIMENT", "GOAMD64", "GOARM64":
			continue
		}
		env = append(env, kv)
	}
	// The context has no go.work; make sure none is found above it either.
	env = append(env, "GOWORK=off")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

func checkStaticBinary(t *testing.T, bin string) {
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		t.Errorf("ELF type %s, want %s (a static executable)", f.Type, elf.ET_EXEC)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("has a %s program header: dynamically linked", prog.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("links %v", libs)
	}
	// -ldflags "-s -w": no symbol table, no DWARF. (Go does not record
	// -ldflags in the build info of a -trimpath build, so look at the file.)
	if syms, err := f.Symbols(); err == nil && len(syms) > 0 {
		t.Errorf("has %d symbols; -ldflags \"-s -w\" strips them", len(syms))
	}
	for _, sec := range f.Sections {
		if strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("has DWARF section %s; -ldflags \"-s -w\" drops them", sec.Name)
			break
		}
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("build info: %v", err)
	}
	if info.Main.Path != modulePath {
		t.Errorf("main module %s, want %s", info.Main.Path, modulePath)
	}
	name := filepath.Base(bin)
	wantPkg := modulePath + "/cmd/" + cliBinary
	if svc, ok := strings.CutPrefix(name, "annals-"); ok {
		wantPkg = modulePath + "/services/" + svc
	}
	if info.Path != wantPkg {
		t.Errorf("built from %s, want %s", info.Path, wantPkg)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s=%q, want %q", k, settings[k], want)
		}
	}

}

// checkProbe runs `annals probe URL` as the compose health checks do: exit
// status 0 for a 2xx answer, 1 otherwise.
func checkProbe(t *testing.T, cli string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok\n")
		case "/unready":
			http.Error(w, "postgres unreachable", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/readyz"
	closed.Close()
	defer srv.Close()

	for _, tc := range []struct {
		url  string
		exit int
	}{
		{srv.URL + "/readyz", 0},
		{srv.URL + "/unready", 1},
		{srv.URL + "/missing", 1},
		{closedURL, 1},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, cli, "probe", tc.url).CombinedOutput()
		cancel()
		code := 0
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			code = exitErr.ExitCode()
		case err != nil:
			t.Fatalf("annals probe %s: %v\n%s", tc.url, err, out)
		}
		if code != tc.exit {
			t.Errorf("annals probe %s: exit status %d, want %d\n%s", tc.url, code, tc.exit, out)
		}
	}
}

// dockerignore reads the repository's .dockerignore.
func dockerignore(t testing.TB, root string) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

// copyContext copies the files of the build context (the repository less
// what .dockerignore excludes) into dst.
func copyContext(t testing.TB, root, dst string, pm *patternmatcher.PatternMatcher) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		return copyEntry(p, filepath.Join(dst, rel), d)
	})
	if err != nil {
		t.Fatalf("assembling the build context: %v", err)
	}
}

// copyInto applies one COPY source (relative to the context, may be a glob)
// to dest; intoDir says that dest is a directory.
func copyInto(t testing.TB, contextDir, src, dest string, intoDir bool) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(contextDir, filepath.FromSlash(src)))
	if err != nil || len(matches) == 0 {
		t.Fatalf("COPY %s: not in the build context (missing, or excluded by .dockerignore)", src)
	}
	for _, m := range matches {
		fi, err := os.Lstat(m)
		if err != nil {
			t.Fatal(err)
		}
		if fi.IsDir() {
			// A directory's contents are copied, not the directory itself.
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(m, p)
				return copyEntry(p, filepath.Join(dest, rel), d)
			})
		} else {
			target := dest
			if intoDir {
				target = filepath.Join(dest, filepath.Base(m))
			}
			err = copyEntry(m, target, fs.FileInfoToDirEntry(fi))
		}
		if err != nil {
			t.Fatalf("COPY %s: %v", src, err)
		}
	}
}

func copyEntry(src, dst string, d fs.DirEntry) error {
	switch {
	case d.IsDir():
		return os.MkdirAll(dst, 0o755)
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case d.Type().IsRegular():
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	default:
		// Sockets, pipes and devices (a local server's runtime files) are
		// no build input.
		return nil
	}
}

// checkService starts a service binary with its compose environment, every
// dependency pointed at a closed local port and HTTP_ADDR at a free local
// port, as the image would run it (configuration file from ANNALS_CONFIG).
// The container health check must then see it live but not ready, /metrics
// must serve what the dashboards chart, and SIGTERM must stop it cleanly.
func checkService(t *testing.T, bin string, composeEnv map[string]string, root string, metrics []string) {
	port, closed := freePort(t), freePort(t)
	nowhere := fmt.Sprintf("127.0.0.1:%d", closed)
	env := maps.Clone(composeEnv)
	env["HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	env[config.PathEnv] = filepath.Join(root, "config", "event_sourcing.tsk")
	if raw, ok := env["DATABASE_URL"]; ok {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = nowhere
		env["DATABASE_URL"] = u.String()
	}
	if _, ok := env["EVENT_STORE_HOST"]; ok {
		env["EVENT_STORE_HOST"], env["EVENT_STORE_PORT"] = "127.0.0.1", strconv.Itoa(closed)
	}
	for _, k := range []string{"KAFKA_BROKERS", "SMTP_ADDR"} {
		if _, ok := env[k]; ok {
			env[k] = nowhere
		}
	}

	var logs strings.Builder
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), logs.String())
		}
	}()

	cli := filepath.Join(filepath.Dir(bin), cliBinary)
	probe := func(path string) int {
		out, err := exec.Command(cli, "probe", fmt.Sprintf("http://127.0.0.1:%d%s", port, path)).CombinedOutput()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("annals probe: %v\n%s", err, out)
		}
		return 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for probe("/livez") != 0 {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("exited before serving /livez on HTTP_ADDR %s: %v", env["HTTP_ADDR"], err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/livez not healthy on HTTP_ADDR %s after 30s", env["HTTP_ADDR"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := probe("/readyz"); code != 1 {
		t.Errorf("annals probe /readyz with PostgreSQL and Kafka unreachable: exit status %d, want 1", code)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range metrics {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `[{ ]`).Match(body) {
			t.Errorf("/metrics has no %s, which the Grafana dashboards chart", m)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("still running 30s after SIGTERM")
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

//go:build stack

package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the folder that holds the Makefile.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); err != nil {
		tb.Fatalf("no Makefile in %s: %v", dir, err)
	}
	return dir
}

// freePorts returns n ports that nothing listens on right now.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// stackEnv describes a private stack: its folder and ports.
type stackEnv struct {
	root, dir                              string
	pg, kafka, controller, smtp, mailpitUI int
}

func newStackEnv(t *testing.T) *stackEnv {
	t.Helper()
	// PostgreSQL runs as another user when the tests run as root: the folder must be
	// searchable by it, which t.TempDir (mode 0700) is not.
	dir, err := os.MkdirTemp("", "annals-stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := freePorts(t, 5)
	return &stackEnv{root: repoRoot(t), dir: dir, pg: p[0], kafka: p[1], controller: p[2], smtp: p[3], mailpitUI: p[4]}
}

func (s *stackEnv) environ() []string {
	return append(os.Environ(),
		"ANNALS_STACK_DIR="+s.dir,
		"ANNALS_PG_PORT="+strconv.Itoa(s.pg),
		"ANNALS_KAFKA_PORT="+strconv.Itoa(s.kafka),
		"ANNALS_KAFKA_CONTROLLER_PORT="+strconv.Itoa(s.controller),
		"ANNALS_SMTP_PORT="+strconv.Itoa(s.smtp),
		"ANNALS_MAILPIT_PORT="+strconv.Itoa(s.mailpitUI),
	)
}

func (s *stackEnv) ports() []int { return []int{s.pg, s.kafka, s.controller, s.smtp, s.mailpitUI} }

// make runs a make target against the private stack and returns its combined output.
func (s *stackEnv) make(t *testing.T, target string) (string, error) {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", target)
	cmd.Dir = s.root
	cmd.Env = s.environ()
	out, err := cmd.CombinedOutput()
	t.Logf("make %s:\n%s", target, out)
	return string(out), err
}

// pids reads the pid files of the private stack (PostgreSQL keeps its own).
func (s *stackEnv) pids(t *testing.T) map[string]int {
	t.Helper()
	files := map[string]string{
		"postgres": filepath.Join(s.dir, "postgres", "data", "postmaster.pid"),
		"kafka":    filepath.Join(s.dir, "kafka.pid"),
		"mailpit":  filepath.Join(s.dir, "mailpit.pid"),
	}
	out := map[string]int{}
	for name, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[name] = pid
	}
	return out
}

// alive: the process exists and is not a zombie waiting for its parent (here, init) to reap it.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// portFree: the port can be bound again, so no process of the stack holds it.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestStackLifecycle(t *testing.T) {
	s := newStackEnv(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"kafka/server.log", "kafka/stdout.log", "postgres/postgres.log", "mailpit/mailpit.log"} {
				if b, err := os.ReadFile(filepath.Join(s.dir, f)); err == nil {
					t.Logf("--- %s (tail)\n%s", f, tail(b, 3000))
				}
			}
		}
		s.make(t, "down")
	})

	out, err := s.make(t, "up")
	if err != nil {
		t.Fatalf("make up: %v", err)
	}
	first := s.pids(t)
	for _, name := range []string{"postgres", "kafka", "mailpit"} {
		if pid, ok := first[name]; !ok || !alive(pid) {
			t.Fatalf("%s is not running after make up (pids %v)", name, first)
		}
	}
	for _, want := range []string{strconv.Itoa(s.pg), strconv.Itoa(s.kafka), strconv.Itoa(s.smtp), strconv.Itoa(s.mailpitUI)} {
		if !strings.Contains(out, want) {
			t.Errorf("make up does not say where things run: port %s missing from its output", want)
		}
	}

	t.Run("SecondUpIsNoOp", func(t *testing.T) {
		out, err := s.make(t, "up")
		if err != nil {
			t.Fatalf("second make up: %v", err)
		}
		if strings.Contains(out, "starting") || strings.Contains(out, "initialising") || strings.Contains(out, "fetching") || strings.Contains(out, "building") {
			t.Errorf("second make up started, fetched or built something:\n%s", out)
		}
		if got := strings.Count(out, "already running"); got != 3 {
			t.Errorf("second make up reports %d components already running, want 3", got)
		}
		if got := s.pids(t); fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("pids changed: before %v, after %v", first, got)
		}
		// Kafka's jars and Mailpit are cached: installing again downloads and builds nothing.
		cmd := exec.Command("scripts/stack.sh", "install")
		cmd.Dir, cmd.Env = s.root, s.environ()
		out2, err := cmd.CombinedOutput()
		if err != nil || len(out2) != 0 {
			t.Errorf("stack.sh install with a warm cache: %v, output %q; want silence", err, out2)
		}
	})

	t.Run("Status", func(t *testing.T) {
		out, err := s.make(t, "stack-status")
		if err != nil {
			t.Fatalf("make stack-status: %v", err)
		}
		if got := strings.Count(out, " running "); got != 3 {
			t.Errorf("status shows %d running components, want 3", got)
		}
	})

	t.Run("DownStopsEverything", func(t *testing.T) {
		if _, err := s.make(t, "down"); err != nil {
			t.Fatalf("make down: %v", err)
		}
		for name, pid := range first {
			if alive(pid) {
				t.Errorf("%s (pid %d) still runs after make down", name, pid)
			}
		}
		for _, p := range s.ports() {
			if !portFree(p) {
				t.Errorf("port %d is still bound after make down", p)
			}
		}
		out, err := s.make(t, "stack-status")
		if err == nil {
			t.Errorf("stack-status succeeded on a stopped stack:\n%s", out)
		}
	})

	t.Run("StalePidFiles", func(t *testing.T) {
		// An unrelated live process whose pid lands in a pid file must be neither trusted
		// nor killed; a pid file naming a dead process is cleaned.
		bystander := exec.Command("sleep", "300")
		if err := bystander.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		writePid(t, filepath.Join(s.dir, "mailpit.pid"), bystander.Process.Pid)
		writePid(t, filepath.Join(s.dir, "kafka.pid"), dead.Process.Pid)

		out, err := s.make(t, "up")
		if err != nil {
			t.Fatalf("make up with stale pid files: %v", err)
		}
		if got := strings.Count(out, "stale pid file"); got != 2 {
			t.Errorf("make up reported %d stale pid files, want 2", got)
		}
		now := s.pids(t)
		if now["mailpit"] == bystander.Process.Pid || now["kafka"] == dead.Process.Pid {
			t.Errorf("stale pids were kept: %v", now)
		}
		for _, name := range []string{"postgres", "kafka", "mailpit"} {
			if !alive(now[name]) {
				t.Errorf("%s is not running after make up", name)
			}
		}
		if _, err := s.make(t, "down"); err != nil {
			t.Fatalf("make down: %v", err)
		}
		if !alive(bystander.Process.Pid) {
			t.Errorf("make up or make down killed an unrelated process whose pid was in a stale pid file")
		}
		for _, p := range s.ports() {
			if !portFree(p) {
				t.Errorf("port %d is still bound after make down", p)
			}
		}
	})

	t.Run("PortInUse", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.kafka))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() { // accept and drop, so the port reads as in use
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		out, err := s.make(t, "up")
		if err == nil {
			t.Fatalf("make up succeeded with the Kafka port taken")
		}
		want := fmt.Sprintf("port %d for Kafka is already in use", s.kafka)
		if !strings.Contains(out, want) || !strings.Contains(out, "ANNALS_KAFKA_PORT") {
			t.Errorf("make up output does not say %q and name ANNALS_KAFKA_PORT:\n%s", want, out)
		}
		if _, ok := s.pids(t)["kafka"]; ok {
			t.Errorf("a Kafka pid file exists although Kafka could not start")
		}
	})
}

func writePid(t *testing.T, path string, pid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestMakeRun starts `make run` as a terminal would (own process group), waits until it says
// the services are ready, checks /readyz on all four, then sends Ctrl-C (SIGINT to the group)
// and checks that every service stopped. It uses the default stack (started by make test) and
// free ports for the services.
func TestMakeRun(t *testing.T) {
	root := repoRoot(t)
	ports := freePorts(t, 4)
	names := []string{"writer", "projector", "notifier", "auditor"}
	env := os.Environ()
	for i, n := range names {
		env = append(env, fmt.Sprintf("ANNALS_%s_PORT=%d", strings.ToUpper(n), ports[i]))
	}
	if _, err := exec.LookPath("prometheus"); err == nil {
		// make run starts the stack's Prometheus when it is not running; the test stops what it
		// started, so that no Prometheus is left scraping the test's ports.
		status, _ := exec.Command(filepath.Join(root, "scripts", "stack.sh"), "status").CombinedOutput()
		if !strings.Contains(string(status), "prometheus running") {
			t.Cleanup(func() {
				if out, err := exec.Command(filepath.Join(root, "scripts", "stack.sh"), "down", "prometheus").CombinedOutput(); err != nil {
					t.Errorf("stack.sh down prometheus: %v\n%s", err, out)
				}
			})
		}
	}
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = root
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var output bytes.Buffer
	ready := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			output.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "all four services are ready") {
				signalled = true
				ready <- true
			}
		}
		if !signalled {
			ready <- false
		}
	}()
	waitc := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); waitc <- err }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	select {
	case ok := <-ready:
		if !ok {
			<-done
			t.Fatalf("make run ended before its services were ready:\n%s", output.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("make run did not report ready within 5 minutes")
	}

	client := &http.Client{Timeout: 5 * time.Second}
	for i, n := range names {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[i]))
		if err != nil {
			t.Errorf("%s /readyz: %v", n, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /readyz = %d %s, want 200", n, resp.StatusCode, body)
		}
	}

	// With Prometheus installed (make test installs it), make run starts it, says where, and
	// Prometheus scrapes the four services of this run.
	if _, err := exec.LookPath("prometheus"); err == nil {
		m := regexp.MustCompile(`run: Prometheus +(http://\S+)`).FindStringSubmatch(output.String())
		if m == nil {
			t.Fatalf("make run did not print Prometheus' URL:\n%s", output.String())
		}
		want := map[string]string{}
		for i, n := range names {
			want[n] = fmt.Sprintf("127.0.0.1:%d", ports[i])
		}
		var last string
		deadline := time.Now().Add(time.Minute)
		for {
			up, seen := promTargetsUp(client, m[1])
			if maps.Equal(up, want) {
				break
			}
			last = seen
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus at %s does not scrape the four services healthy within a minute; want %v, targets: %s", m[1], want, last)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Ctrl-C.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	select {
	case <-waitc:
	case <-ctx.Done():
		t.Fatalf("make run did not stop within a minute of Ctrl-C")
	}
	<-done
	t.Logf("make run output:\n%s", output.String())
	if !strings.Contains(output.String(), "services stopped") {
		t.Errorf("make run did not report that it stopped the services")
	}
	for i, n := range names {
		if !portFree(ports[i]) {
			t.Errorf("%s still holds port %d after Ctrl-C", n, ports[i])
		}
	}
}

// promTargetsUp returns the healthy targets of Prometheus at base by their service label, and
// a description of every active target for messages.
func promTargetsUp(client *http.Client, base string) (map[string]string, string) {
	resp, err := client.Get(base + "/api/v1/targets?state=active")
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err.Error()
	}
	up := map[string]string{}
	var seen []string
	for _, tg := range r.Data.ActiveTargets {
		if tg.Labels["job"] != "annals" {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s=%s %s %s", tg.Labels["service"], tg.Labels["instance"], tg.Health, tg.LastError))
		if tg.Health == "up" {
			up[tg.Labels["service"]] = tg.Labels["instance"]
		}
	}
	return up, strings.Join(seen, "; ")
}

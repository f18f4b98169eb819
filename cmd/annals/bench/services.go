package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Services are the names of the four service programs, annals-<name> in the binary folder.
var Services = []string{"writer", "projector", "notifier", "auditor"}

// Service is a service program running for the benchmark.
type Service struct {
	Name, URL, Log string
	cmd            *exec.Cmd
	done           chan struct{}
	err            error
}

// StartServices starts the four services from binDir, each on a free loopback port, with
// the environment env on top of this process's, in dir (no configuration file there: the
// defaults and the environment only), logging to dir/<name>.log. It returns once every one
// answers /readyz; on an error it stops those it started.
func StartServices(ctx context.Context, binDir, dir string, env map[string]string) ([]*Service, error) {
	var started []*Service
	fail := func(err error) ([]*Service, error) {
		StopServices(started, 20*time.Second)
		return nil, err
	}
	for _, name := range Services {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		s, err := startService(filepath.Join(binDir, "annals-"+name), name, dir, port, env)
		if err != nil {
			return fail(err)
		}
		started = append(started, s)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for _, s := range started {
		for {
			resp, err := client.Get(s.URL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if s.exited() {
				return fail(fmt.Errorf("bench: the %s exited during start-up (%v); see %s", s.Name, s.err, s.Log))
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("bench: the %s is not ready after 90s; see %s", s.Name, s.Log))
			}
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return started, nil
}

func startService(bin, name, dir string, port int, env map[string]string) (*Service, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("bench: the %s's program: %w (make build puts it in bin/)", name, err)
	}
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that a Ctrl-C meant for the benchmark reaches the services
	// only through StopServices; and SIGTERM if the benchmark dies without stopping them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start the %s: %w", name, err)
	}
	s := &Service{Name: name, URL: "http://" + addr, Log: log, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); f.Close(); close(s.done) }()
	return s, nil
}

func (s *Service) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// StopServices sends SIGTERM to each service and waits for them; one still running after
// timeout is killed.
func StopServices(ss []*Service, timeout time.Duration) {
	for _, s := range ss {
		if !s.exited() {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(timeout)
	for _, s := range ss {
		select {
		case <-s.done:
		case <-deadline:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
}

// freePort is a loopback port that nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("bench: no TCP address")
	}
	return addr.Port, nil
}

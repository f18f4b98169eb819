package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

func envFunc(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// needsKafka is a service whose readiness depends on Kafka, as every one but the writer's does,
// named writer for the tests' expectations.
var needsKafka = app.Service{Name: app.Writer.Name, DefaultPort: app.Writer.DefaultPort}

// start opens a service in-process on a free port and runs it until the test ends.
func start(t *testing.T, env map[string]string) *app.Main {
	t.Helper()
	return startService(t, needsKafka, env, nil)
}

// startService opens svc in-process on a free port, runs setup on it, and runs it until the
// test ends.
func startService(t *testing.T, svc app.Service, env map[string]string, setup func(*app.Main)) *app.Main {
	t.Helper()
	m, err := app.New(svc, []string{"-addr", "127.0.0.1:0"}, envFunc(env), io.Discard)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if setup != nil {
		setup(m)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	return m
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestMain_Ready(t *testing.T) {
	m := start(t, map[string]string{
		"DATABASE_URL":  testenv.PostgresURL(t),
		"KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(t), ","),
	})
	base := "http://" + m.Addr()

	t.Run("Livez", func(t *testing.T) {
		if code, body := get(t, base+"/livez"); code != 200 {
			t.Errorf("/livez = %d %s", code, body)
		}
	})
	t.Run("Readyz", func(t *testing.T) {
		code, body := get(t, base+"/readyz")
		if code != 200 {
			t.Fatalf("/readyz = %d %s, want 200", code, body)
		}
		var got struct{ Checks map[string]string }
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Checks["postgres"] != "ok" || got.Checks["kafka"] != "ok" {
			t.Errorf("checks = %v, want postgres and kafka ok", got.Checks)
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		code, body := get(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics = %d", code)
		}
		for _, want := range []string{`annals_service_info{service="writer"`, "go_goroutines", "process_cpu_seconds_total", `annals_http_requests_total{code="200",method="GET",route="/livez"} 1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("OpenAPIMatchesRoutes", func(t *testing.T) {
		code, body := get(t, base+"/openapi.json")
		if code != 200 {
			t.Fatalf("/openapi.json = %d", code)
		}
		var doc struct {
			OpenAPI string                                `json:"openapi"`
			Paths   map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		var documented []string
		for path, ops := range doc.Paths {
			for method := range ops {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
		slices.Sort(documented)
		if got, want := documented, m.Router.Routes(); !slices.Equal(got, want) {
			t.Errorf("documented %v, served %v", got, want)
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.") {
			t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
		}
	})
}

// The writer is ready without Kafka, which its outbox stands in for: /readyz reports Kafka and
// the service's other reports beside its checks, and each report has a route of its own.
func TestMain_ReadyWithoutKafka(t *testing.T) {
	m := startService(t, app.Writer, map[string]string{
		"DATABASE_URL":  testenv.PostgresURL(t),
		"KAFKA_BROKERS": closedPort(t),
	}, func(m *app.Main) {
		m.AddReport("engine", func(context.Context) (any, bool) { return map[string]string{"state": "stalled"}, false })
	})
	base := "http://" + m.Addr()
	code, body := get(t, base+"/readyz")
	if code != http.StatusOK {
		t.Fatalf("/readyz = %d %s, want 200 without Kafka", code, body)
	}
	var got struct {
		Checks map[string]string
		Kafka  string
		Engine map[string]string
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Checks["kafka"]; ok || got.Checks["postgres"] != "ok" {
		t.Errorf("checks = %v, want postgres only", got.Checks)
	}
	if got.Kafka == "" || got.Kafka == "ok" || got.Engine["state"] != "stalled" {
		t.Errorf("reports: kafka %q, engine %v; want Kafka's error and the engine's state", got.Kafka, got.Engine)
	}
	for _, path := range []string{"/healthz/kafka", "/healthz/engine"} {
		if code, body := get(t, base+path); code != http.StatusServiceUnavailable {
			t.Errorf("%s = %d %s, want 503", path, code, body)
		}
	}
}

func TestMain_Unavailable(t *testing.T) {
	secret := "s3cret-pw-" + fmt.Sprint(time.Now().UnixNano())
	m := start(t, map[string]string{
		"DATABASE_URL":  "postgres://annals:" + secret + "@" + closedPort(t) + "/annals?sslmode=disable&connect_timeout=1",
		"KAFKA_BROKERS": closedPort(t),
	})
	base := "http://" + m.Addr()
	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Errorf("/livez = %d, want 200 without any dependency", code)
	}
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %s, want 503", code, body)
	}
	var got struct {
		Error struct {
			Code   string
			Checks map[string]string
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Error.Code != "unavailable" {
		t.Errorf("code = %q, want unavailable", got.Error.Code)
	}
	for _, dep := range []string{"postgres", "kafka"} {
		if got.Error.Checks[dep] == "ok" || got.Error.Checks[dep] == "" {
			t.Errorf("check %s = %q, want an error", dep, got.Error.Checks[dep])
		}
	}
	if strings.Contains(string(body), secret) {
		t.Errorf("/readyz leaks the database password: %s", body)
	}
}

func TestNew_BadConfiguration(t *testing.T) {
	for _, tc := range []struct{ name, key, value string }{
		{"UnsupportedStore", "EVENT_STORE_TYPE", "redis"},
		{"BadInt", "SNAPSHOT_FREQUENCY", "often"},
		{"BadDuration", "SHUTDOWN_TIMEOUT", "soon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.New(app.Writer, nil, envFunc(map[string]string{tc.key: tc.value}), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("New with %s=%s: %v, want an error naming %s", tc.key, tc.value, err, tc.key)
			}
		})
	}
}

func TestOpen_PortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := app.New(app.Projector, nil, envFunc(map[string]string{"HTTP_ADDR": l.Addr().String()}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Errorf("Open on a taken port: %v, want an error naming the address and HTTP_ADDR", err)
	}
}

// TestServices_SIGTERM builds each service binary, runs it against the real stack until
// /readyz answers 200, sends SIGTERM and expects a clean exit.
//
// The services run in a fresh schema (migrated at start-up) with topics of their own, so that
// they neither touch nor consume the stack's default deployment.
func TestServices_SIGTERM(t *testing.T) {
	_, schemaName := testenv.SchemaPool(t)
	dbURL := testenv.SchemaURL(t, schemaName)
	brokers := strings.Join(testenv.KafkaBrokers(t), ",")
	prefix := "sigterm-" + testenv.UniqueName(t)
	t.Cleanup(func() {
		topics := []string{kafkawire.Topic(prefix, "user"), kafkawire.Topic(prefix, "order")}
		for _, service := range []string{"projector", "notifier", "auditor"} {
			topics = append(topics, kafkawire.DeadLetterTopic(prefix, prefix+"-"+service))
		}
		client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 30 * time.Second}
		if _, err := client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
			t.Logf("delete topics: %v", err)
		}
	})
	dir := t.TempDir()
	for _, svc := range app.Services() {
		t.Run(svc.Name, func(t *testing.T) {
			bin := filepath.Join(dir, "annals-"+svc.Name)
			build := exec.Command("go", "build", "-o", bin, "github.com/annals-dev/annals/services/"+svc.Name)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			addr := closedPort(t)
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+brokers, "HTTP_ADDR="+addr, "LOG_FORMAT=json",
				"MIGRATE_ON_START=true", "KAFKA_TOPIC_PREFIX="+prefix)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer cmd.Process.Kill()

			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get("http://" + addr + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				select {
				case err := <-exited:
					t.Fatalf("exited before ready: %v\n%s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("not ready within 30s\n%s", stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20s after SIGTERM\n%s", stderr.String())
			}
			for _, want := range []string{`"msg":"started"`, `"msg":"shutting down"`, `"msg":"stopped"`} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("log lacks %s:\n%s", want, stderr.String())
				}
			}
		})
	}
}

func TestMain_Workers(t *testing.T) {
	open := func(t *testing.T) *app.Main {
		m, err := app.New(app.Auditor, []string{"-addr", "127.0.0.1:0"}, envFunc(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	t.Run("ErrorStopsTheService", func(t *testing.T) {
		m := open(t)
		m.Go("boom", func(context.Context) error { return fmt.Errorf("exploded") })
		err := m.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "boom: exploded") {
			t.Errorf("Run = %v, want the worker's error", err)
		}
	})
	t.Run("StopsWithTheService", func(t *testing.T) {
		m := open(t)
		stopped := make(chan struct{})
		m.Go("waiter", func(ctx context.Context) error {
			<-ctx.Done()
			close(stopped)
			return nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		select {
		case <-stopped:
		default:
			t.Errorf("Run returned before its worker stopped")
		}
	})
}

// TestMain_MetricsDisabled: with EVENT_SOURCING_METRICS_ENABLED=false there is no /metrics.
func TestMain_MetricsDisabled(t *testing.T) {
	m := start(t, map[string]string{
		"DATABASE_URL":                   testenv.PostgresURL(t),
		"KAFKA_BROKERS":                  strings.Join(testenv.KafkaBrokers(t), ","),
		"EVENT_SOURCING_METRICS_ENABLED": "false",
	})
	if code, _ := get(t, "http://"+m.Addr()+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics = %d, want 404", code)
	}
	if slices.Contains(m.Router.Routes(), "GET /metrics") {
		t.Errorf("routes %v include /metrics", m.Router.Routes())
	}
}

// TestMain_MetricsFilters: EVENT_PERFORMANCE_MONITORING=false leaves the histograms out of
// /metrics, EVENT_TRACKING_ENABLED=false the series by event type; the rest stays.
func TestMain_MetricsFilters(t *testing.T) {
	m := start(t, map[string]string{
		"DATABASE_URL":                 testenv.PostgresURL(t),
		"KAFKA_BROKERS":                strings.Join(testenv.KafkaBrokers(t), ","),
		"EVENT_PERFORMANCE_MONITORING": "false",
		"EVENT_TRACKING_ENABLED":       "false",
	})
	byType := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "test_by_type_seconds", Help: "h"}, []string{"type"})
	byType.WithLabelValues("UserCreated").Observe(1)
	counted := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_by_type_total", Help: "c"}, []string{"type"})
	counted.WithLabelValues("UserCreated").Inc()
	plain := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_plain_total", Help: "c"})
	plain.Inc()
	m.Registry.MustRegister(byType, counted, plain)
	base := "http://" + m.Addr()
	get(t, base+"/livez") // a request, so that the HTTP histogram has a sample
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	text := string(body)
	for _, gone := range []string{"annals_http_request_duration_seconds", "test_by_type_seconds", "test_by_type_total"} {
		if strings.Contains(text, gone) {
			t.Errorf("/metrics has %s", gone)
		}
	}
	for _, kept := range []string{"test_plain_total 1", "annals_http_requests_total", "go_goroutines"} {
		if !strings.Contains(text, kept) {
			t.Errorf("/metrics lacks %s", kept)
		}
	}
}

// TestMain_Pprof: PPROF_ENABLED=true serves Go's runtime profiles beside the service's routes,
// out of its OpenAPI document; by default there are none.
func TestMain_Pprof(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":  testenv.PostgresURL(t),
		"KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(t), ","),
	}
	off := start(t, env)
	if code, _ := get(t, "http://"+off.Addr()+"/debug/pprof/goroutine?debug=1"); code != http.StatusNotFound {
		t.Errorf("without PPROF_ENABLED: /debug/pprof/goroutine = %d, want 404", code)
	}

	env["PPROF_ENABLED"] = "true"
	on := start(t, env)
	base := "http://" + on.Addr()
	code, body := get(t, base+"/debug/pprof/goroutine?debug=1")
	if code != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine = %d:\n%.200s", code, body)
	}
	code, body = get(t, base+"/debug/pprof/heap")
	if code != http.StatusOK || len(body) == 0 {
		t.Errorf("/debug/pprof/heap = %d, %d bytes", code, len(body))
	}
	if code, _ := get(t, base+"/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d beside the profiles", code)
	}
	// An unknown path is still the router's: its JSON 404, counted as unmatched.
	code, body = get(t, base+"/no/such/route")
	if code != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("/no/such/route = %d: %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	if !strings.Contains(string(metrics), `route="unmatched"`) {
		t.Error(`/metrics counts no request with route="unmatched"`)
	}
	_, doc := get(t, base+"/openapi.json")
	if strings.Contains(string(doc), "pprof") {
		t.Error("the OpenAPI document lists the profiles")
	}
}

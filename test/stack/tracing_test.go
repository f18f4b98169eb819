//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// The tracing test: the four services run as processes of their own and send their traces to a
// real trace backend, Jaeger v2, which the test starts through scripts/stack.sh on free loopback
// ports in a folder of its own (spans in memory). One command, sent with a trace id of the
// test's own, must come back from Jaeger's query API as one trace that holds the writer's
// request, its append, the relay's publish, and each consumer group's handling with the
// projector's apply, the notifier's SMTP send and the auditor's append, each span the child of
// the one before it; and the services' log lines about it carry that trace id.

// jaeger is a Jaeger v2 that scripts/stack.sh runs for the test.
type jaeger struct {
	env        []string
	dir        string
	otlp, api  int // OTLP/HTTP receiver, query API
	otlpGRPC   int
	queryGRPC  int
	scriptsDir string
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	dir := t.TempDir()
	p := freePorts(t, 4)
	j := &jaeger{dir: dir, otlp: p[0], otlpGRPC: p[1], api: p[2], queryGRPC: p[3], scriptsDir: filepath.Join(repoRoot(t), "scripts")}
	j.env = append(os.Environ(),
		"ANNALS_STACK_DIR="+dir,
		"ANNALS_JAEGER_OTLP_PORT="+strconv.Itoa(j.otlp),
		"ANNALS_JAEGER_OTLP_GRPC_PORT="+strconv.Itoa(j.otlpGRPC),
		"ANNALS_JAEGER_PORT="+strconv.Itoa(j.api),
		"ANNALS_JAEGER_QUERY_GRPC_PORT="+strconv.Itoa(j.queryGRPC),
	)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := os.ReadFile(filepath.Join(dir, "jaeger", "jaeger.log")); err == nil {
				t.Logf("--- jaeger.log (tail)\n%s", tail(out, 3000))
			}
		}
		j.script(t, "down", "jaeger")
	})
	j.script(t, "up", "jaeger")
	return j
}

// script runs scripts/stack.sh on the test's folder and ports.
func (j *jaeger) script(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(j.scriptsDir, "stack.sh"), args...)
	cmd.Dir, cmd.Env = repoRoot(t), j.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack.sh %s (the test's Jaeger): %v\n%s", strings.Join(args, " "), err, out)
	}
}

// jaegerTrace is a trace as Jaeger's query API returns it (GET /api/traces/{id}).
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// traceSpan is one span of a trace: who made it, what, and its parent.
type traceSpan struct{ service, name, id, parent, trace string }

func (s traceSpan) String() string {
	return fmt.Sprintf("%s %q (span %s, parent %s)", s.service, s.name, s.id, s.parent)
}

// trace fetches a trace from the query API: its spans, or nil while Jaeger does not have it.
func (j *jaeger) trace(t *testing.T, id string) []traceSpan {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces/%s", j.api, id))
	if err != nil {
		t.Fatalf("query Jaeger: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct{ Data []jaegerTrace }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("query Jaeger: %d %v", resp.StatusCode, err)
	}
	var out []traceSpan
	for _, tr := range body.Data {
		for _, sp := range tr.Spans {
			s := traceSpan{service: tr.Processes[sp.ProcessID].ServiceName, name: sp.OperationName, id: sp.SpanID, trace: sp.TraceID}
			for _, r := range sp.References {
				if r.RefType == "CHILD_OF" {
					s.parent = r.SpanID
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// randomHex is n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestTracing_OneCommandAcrossThePipeline(t *testing.T) {
	j := startJaeger(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./services/writer", "./services/projector", "./services/notifier", "./services/auditor")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := newFaultEnv(t)
	e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:" + strconv.Itoa(j.otlp)
	e.vars["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
	e.vars["LOG_LEVEL"] = "debug" // the request's and the messages' lines
	services := map[string]*service{}
	for _, name := range []string{"writer", "projector", "notifier", "auditor"} {
		services[name] = startService(t, filepath.Join(dir, name), e, name, freeAddr(t))
	}
	domain := "trace-" + testenv.UniqueName(t) + ".example"
	t.Cleanup(func() { notifierDeleteMail(t, domain) })

	traceID, callerSpan := randomHex(t, 16), randomHex(t, 8)
	body, _ := json.Marshal(map[string]string{"email": "ada@" + domain, "name": "Ada Lovelace"})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, services["writer"].url+"/v1/users", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/users: %d", resp.StatusCode)
	}

	topic := e.cfg.TopicName("user")
	// Each step: the service and span name, the step whose span is its parent.
	steps := []struct{ key, service, name, parent string }{
		{"request", "annals-writer", "POST /v1/users", ""},
		{"append", "annals-writer", "append user", "request"},
		{"publish", "annals-writer", "publish " + topic, "append"},
		{"projector", "annals-projector", "process " + topic, "publish"},
		{"notifier", "annals-notifier", "process " + topic, "publish"},
		{"auditor", "annals-auditor", "process " + topic, "publish"},
		{"apply", "annals-projector", "apply UserCreated", "projector"},
		{"send", "annals-notifier", "smtp send", "notifier"},
		{"audit", "annals-auditor", "audit append", "auditor"},
	}
	var spans []traceSpan
	found := map[string]traceSpan{}
	deadline := time.Now().Add(time.Minute)
	for {
		spans = j.trace(t, traceID)
		clear(found)
		for _, st := range steps {
			parent := callerSpan
			if st.parent != "" {
				parent = found[st.parent].id
			}
			i := slices.IndexFunc(spans, func(s traceSpan) bool {
				return s.service == st.service && s.name == st.name && s.parent == parent && parent != ""
			})
			if i >= 0 {
				found[st.key] = spans[i]
			}
		}
		if len(found) == len(steps) {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, st := range steps {
				if _, ok := found[st.key]; !ok {
					under := st.parent
					if under == "" {
						under = "the caller's span " + callerSpan
					}
					missing = append(missing, fmt.Sprintf("%s %q under %s", st.service, st.name, under))
				}
			}
			var got []string
			for _, s := range spans {
				got = append(got, s.String())
			}
			t.Fatalf("after a minute, trace %s lacks %s; it has:\n  %s", traceID, strings.Join(missing, ", "), strings.Join(got, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range spans {
		if s.trace != traceID {
			t.Errorf("span %v is in trace %s, want %s", s, s.trace, traceID)
		}
	}
	t.Logf("trace %s: %d spans, from %s to %s", traceID, len(spans), found["request"], found["audit"])

	// The services' log lines about the command carry its trace id.
	for name, s := range services {
		if !strings.Contains(s.logText(t), `"trace_id":"`+traceID+`"`) {
			t.Errorf("no line of the %s's log carries trace_id %s", name, traceID)
		}
	}
}

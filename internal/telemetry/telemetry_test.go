package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/telemetry"
)

func monitoring(endpoint, protocol string) config.Monitoring {
	c := config.Default().Monitoring
	c.OTLPEndpoint, c.OTLPProtocol = endpoint, protocol
	return c
}

func TestNew_Off(t *testing.T) {
	tr, err := telemetry.New(context.Background(), config.Default().Monitoring, "writer", "dev")
	if err != nil || tr != nil {
		t.Errorf("New without an endpoint = %v, %v; want nil, nil (tracing off)", tr, err)
	}
}

// TestNew_SendsToReceiver: the spans go to the receiver's /v1/traces as OTLP protobuf, under
// the service's name.
func TestNew_SendsToReceiver(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("receiver: %v", err)
		}
		mu.Lock()
		got, paths = append(got, req), append(paths, r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	ctx := context.Background()
	tr, err := telemetry.New(ctx, monitoring(srv.URL+"/", "http/protobuf"), "projector", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(ctx, "apply")
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || paths[0] != "/v1/traces application/x-protobuf" {
		t.Fatalf("requests %v, want one POST to /v1/traces", paths)
	}
	rs := got[0].GetResourceSpans()[0]
	var service, version string
	for _, a := range rs.GetResource().GetAttributes() {
		switch a.GetKey() {
		case "service.name":
			service = a.GetValue().GetStringValue()
		case "service.version":
			version = a.GetValue().GetStringValue()
		}
	}
	if service != "annals-projector" || version != "1.2.3" {
		t.Errorf("service %q version %q, want annals-projector 1.2.3", service, version)
	}
	if spans := rs.GetScopeSpans()[0].GetSpans(); len(spans) != 1 || spans[0].GetName() != "apply" {
		t.Errorf("spans %v, want the one named apply", spans)
	}
}

// blackhole accepts connections and never answers: a receiver that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestNew_UnreachableReceiverNeverBlocks: with a receiver that hangs, or none at all, ending
// spans never waits for it (what the queue cannot hold is dropped), and shutting down waits
// no longer than its context.
func TestNew_UnreachableReceiverNeverBlocks(t *testing.T) {
	closed := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}
	for _, tc := range []struct {
		name, protocol string
		endpoint       func(*testing.T) string
	}{
		{"HangsHTTP", "http/protobuf", blackhole},
		{"HangsGRPC", "grpc", blackhole},
		{"RefusesHTTP", "http/protobuf", closed},
		{"RefusesGRPC", "grpc", closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tr, err := telemetry.New(ctx, monitoring(tc.endpoint(t), tc.protocol), "writer", "dev")
			if err != nil {
				t.Fatal(err)
			}
			tracer := tr.TracerProvider().Tracer("test")
			start := time.Now()
			// Three queues' worth, over more than one batch timeout, so that exports are stuck
			// on the receiver meanwhile.
			n := 0
			for time.Since(start) < telemetry.BatchTimeout+500*time.Millisecond || n < 3*telemetry.QueueSize {
				spanStart := time.Now()
				_, span := tracer.Start(ctx, "command")
				span.End()
				if d := time.Since(spanStart); d > 200*time.Millisecond {
					t.Fatalf("span %d took %s to start and end: the exporter blocks the caller", n, d)
				}
				n++
				if n%1000 == 0 {
					time.Sleep(time.Millisecond) // a steady flow rather than one burst
				}
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			began := time.Now()
			_ = tr.Shutdown(sctx) // the spans cannot be sent: an error is expected
			if d := time.Since(began); d > 3*time.Second {
				t.Errorf("shutdown took %s with a one-second context", d)
			}
		})
	}
}

func TestSampler(t *testing.T) {
	for _, tc := range []struct{ name, arg, want string }{
		{"always_on", "1", "AlwaysOnSampler"},
		{"always_off", "1", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"parentbased_always_on", "1", "ParentBased{root:AlwaysOnSampler,"},
		{"parentbased_traceidratio", "0.5", "ParentBased{root:TraceIDRatioBased{0.5},"},
	} {
		s, err := telemetry.Sampler(tc.name, tc.arg)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if d := s.Description(); len(d) < len(tc.want) || d[:len(tc.want)] != tc.want {
			t.Errorf("%s: %s, want %s...", tc.name, d, tc.want)
		}
	}
	if _, err := telemetry.Sampler("traceidratio", "2"); err == nil {
		t.Error("a ratio of 2 was accepted")
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "writer")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2}, SpanID: trace.SpanID{3}, TraceFlags: trace.FlagsSampled})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2}, SpanID: trace.SpanID{3}})
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		trace, sid string
	}{
		{"Traced", trace.ContextWithSpanContext(context.Background(), sc), sc.TraceID().String(), sc.SpanID().String()},
		{"Unsampled", trace.ContextWithSpanContext(context.Background(), unsampled), "", ""},
		{"NoSpan", context.Background(), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			log.InfoContext(tc.ctx, "command", "status", 201)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			got, _ := line["trace_id"].(string)
			sid, _ := line["span_id"].(string)
			if got != tc.trace || sid != tc.sid || line["service"] != "writer" {
				t.Errorf("line %v, want trace_id %q span_id %q", line, tc.trace, tc.sid)
			}
		})
	}
}

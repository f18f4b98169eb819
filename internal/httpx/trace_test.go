package httpx_test

import (
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/internal/httpx"
)

// TestMiddleware_Tracing: with a tracer provider and the W3C propagator installed, a request
// is a server span named after its route, a child of the caller's traceparent, and the
// handler's context carries it; the probes are not traced. Middleware reads the globals when
// it is built, as a service builds it once its SDK is installed.
func TestMiddleware_Tracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	var inHandler trace.SpanContext
	var started time.Time
	r := httpx.NewRouter()
	r.HandleFunc("POST", "/v1/things/{id}", httpx.Operation{Summary: "change a thing"}, func(w http.ResponseWriter, req *http.Request) {
		inHandler, started = trace.SpanContextFromContext(req.Context()), httpx.Started(req)
		w.WriteHeader(http.StatusCreated)
	})
	r.HandleFunc("GET", "/livez", httpx.Operation{Summary: "alive"}, func(w http.ResponseWriter, _ *http.Request) {})
	h := httpx.Middleware(r, nil, nil)

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	before := time.Now()
	do(h, "POST", "/v1/things/42", map[string]string{"traceparent": caller, httpx.CorrelationHeader: "corr-1"})
	do(h, "GET", "/livez", nil)

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (the probe is not traced)", len(spans))
	}
	sp := spans[0]
	if sp.Name() != "POST /v1/things/{id}" || sp.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q (%v), want \"POST /v1/things/{id}\", a server span", sp.Name(), sp.SpanKind())
	}
	if sp.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sp.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("parent %v, want the caller's traceparent", sp.Parent())
	}
	if inHandler.SpanID() != sp.SpanContext().SpanID() {
		t.Errorf("the handler's context carries %v, want the server span %v", inHandler, sp.SpanContext())
	}
	attrs := map[string]string{}
	for _, a := range sp.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["http.route"] != "/v1/things/{id}" || attrs["http.response.status_code"] != "201" || attrs["annals.correlation_id"] != "corr-1" {
		t.Errorf("attributes %v", attrs)
	}
	if started.Before(before) || started.After(time.Now()) {
		t.Errorf("Started = %v, want the request's arrival", started)
	}
}

package relay_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// traceparentOf is the W3C traceparent of a sampled span context.
func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// TestRelay_Tracing: the relay publishes each append in the trace of the command that
// recorded it: its publish span is a child of the append's span (whose traceparent the
// events' metadata holds), and each record's traceparent header is the publish span's. An
// append recorded outside any trace starts one of its own. Every record is
// stamped with the time it was sent, and its commit-to-ack hop is measured.
func TestRelay_Tracing(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	tracing := hops.Tracing{Provider: tp, Propagator: propagation.TraceContext{}}
	e := newEnv(t)
	e.store = postgres.New(e.pool, postgres.Options{Tracing: tracing})

	cctx, command := tp.Tracer("test").Start(ctx, "command")
	evs := []events.Event{{Type: "Something", Data: []byte(`{"i":0}`)}, {Type: "Something", Data: []byte(`{"i":1}`)}}
	if _, err := e.store.Append(cctx, "user-traced", events.NoStream(), evs, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	command.End()
	e.append(t, "user-plain", 1, "Something") // outside any trace
	var appendSpan, plainSpan trace.SpanContext
	for _, sp := range rec.Ended() {
		switch {
		case sp.Name() != "append user":
		case sp.Parent().SpanID() == command.SpanContext().SpanID():
			appendSpan = sp.SpanContext()
		case !sp.Parent().IsValid():
			plainSpan = sp.SpanContext()
		}
	}
	if !appendSpan.IsValid() || !plainSpan.IsValid() {
		t.Fatalf("append spans %v (under the command's) and %v (a root), want both", appendSpan, plainSpan)
	}

	sent := time.Now()
	reg := prometheus.NewRegistry()
	e.start(t, relay.Config{Tracing: tracing, Metrics: relay.NewMetrics(reg)})
	recs := e.consume(t, 3, time.Minute)

	publishSpans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	waitFor(t, "the records' publish spans to end", func() bool {
		for _, sp := range rec.Ended() {
			if strings.HasPrefix(sp.Name(), "publish ") {
				publishSpans[sp.SpanContext().SpanID()] = sp
			}
		}
		for _, r := range recs {
			sc := trace.SpanContextFromContext(hops.FromHeaders(ctx, propagation.TraceContext{}, kafkaHeaders(r.Headers)))
			if _, ok := publishSpans[sc.SpanID()]; !ok {
				return false
			}
		}
		return true
	})
	for _, r := range recs {
		at, err := time.Parse(time.RFC3339Nano, r.Headers[kafkawire.HeaderPublishedAt])
		if err != nil || at.Before(sent.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("%s@%d: published-at %q (%v), want a time since the relay started", r.Stream, r.Version, r.Headers[kafkawire.HeaderPublishedAt], err)
		}
		sc := trace.SpanContextFromContext(hops.FromHeaders(ctx, propagation.TraceContext{}, kafkaHeaders(r.Headers)))
		span, ok := publishSpans[sc.SpanID()]
		if !ok {
			t.Errorf("%s@%d: traceparent %q is no publish span's", r.Stream, r.Version, r.Headers[kafkawire.HeaderTraceparent])
			continue
		}
		if want := "publish " + kafkawire.Topic(e.prefix, "user"); span.Name() != want || span.SpanKind() != trace.SpanKindProducer {
			t.Errorf("span %q (%v), want %q, a producer", span.Name(), span.SpanKind(), want)
		}
		var md map[string]string
		_ = json.Unmarshal([]byte(r.Headers[kafkawire.HeaderMetadata]), &md)
		switch r.Stream {
		case "user-traced":
			if span.Parent().SpanID() != appendSpan.SpanID() || sc.TraceID() != command.SpanContext().TraceID() {
				t.Errorf("%s@%d: publish span under %v, want under the append's span %v in the command's trace", r.Stream, r.Version, span.Parent(), appendSpan)
			}
			if md[hops.MetadataTraceparent] != traceparentOf(appendSpan) {
				t.Errorf("%s@%d: metadata %v, want the append's traceparent %s", r.Stream, r.Version, md, traceparentOf(appendSpan))
			}
		case "user-plain":
			if span.Parent().SpanID() != plainSpan.SpanID() || sc.TraceID() != plainSpan.TraceID() {
				t.Errorf("%s: publish span under %v, want under the append's own root span %v", r.Stream, span.Parent(), plainSpan)
			}
		}
	}
	if n := metric(t, reg, hops.MetricName, "hop", string(hops.CommitToAck)); n != 3 {
		t.Errorf("commit_to_ack observed %v times, want 3", n)
	}
}

// kafkaHeaders turns a record's headers back into a list.
func kafkaHeaders(m map[string]string) []kafka.Header {
	out := make([]kafka.Header, 0, len(m))
	for k, v := range m {
		out = append(out, kafka.Header{Key: k, Value: []byte(v)})
	}
	return out
}

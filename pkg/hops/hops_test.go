package hops_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/hops"
)

var w3c = propagation.TraceContext{}

// withSpan returns ctx carrying a sampled span context with tracestate ts.
func withSpan(t *testing.T, ts string) (context.Context, trace.SpanContext) {
	t.Helper()
	state, err := trace.ParseTraceState(ts)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
		TraceState: state,
	})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestTraceMetadata(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		ctx, sc := withSpan(t, "vendor=abc")
		md := hops.TraceMetadata(ctx, w3c)
		want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
		if got := md[hops.MetadataTraceparent]; got != want {
			t.Errorf("traceparent %q, want %q", got, want)
		}
		if got := md[hops.MetadataTracestate]; got != "vendor=abc" {
			t.Errorf("tracestate %q, want vendor=abc", got)
		}
		back := trace.SpanContextFromContext(hops.FromMetadata(context.Background(), w3c, md))
		if back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || !back.IsRemote() {
			t.Errorf("read back %v, want the remote %v", back, sc)
		}
	})
	t.Run("LongTracestateLeftOut", func(t *testing.T) {
		var entries []string
		for i := range 20 {
			entries = append(entries, "k"+string(rune('a'+i))+"="+strings.Repeat("v", 20))
		}
		ctx, _ := withSpan(t, strings.Join(entries, ","))
		md := hops.TraceMetadata(ctx, w3c)
		if md[hops.MetadataTraceparent] == "" {
			t.Error("no traceparent")
		}
		if ts, ok := md[hops.MetadataTracestate]; ok {
			t.Errorf("tracestate of %d bytes kept, want it left out over %d", len(ts), hops.MaxTracestateBytes)
		}
	})
	t.Run("NoSpan", func(t *testing.T) {
		if md := hops.TraceMetadata(context.Background(), w3c); md != nil {
			t.Errorf("got %v without a span, want nil", md)
		}
	})
	t.Run("NoPropagator", func(t *testing.T) {
		ctx, _ := withSpan(t, "")
		if md := hops.TraceMetadata(ctx, propagation.NewCompositeTextMapPropagator()); md != nil {
			t.Errorf("got %v with a propagator that carries nothing, want nil", md)
		}
	})
	t.Run("FromMetadataWithout", func(t *testing.T) {
		ctx := hops.FromMetadata(context.Background(), w3c, map[string]string{"actor": "alice"})
		if trace.SpanContextFromContext(ctx).IsValid() {
			t.Error("a span context from metadata without a traceparent")
		}
	})
}

func TestHeaderCarrier(t *testing.T) {
	ctx, sc := withSpan(t, "")
	headers := []kafka.Header{{Key: "event-id", Value: []byte("e1")}, {Key: "traceparent", Value: []byte("stale")}}
	w3c.Inject(ctx, hops.HeaderCarrier{Headers: &headers})
	if len(headers) != 2 {
		t.Fatalf("%d headers after inject, want 2 (the traceparent replaced): %v", len(headers), headers)
	}
	got := trace.SpanContextFromContext(hops.FromHeaders(context.Background(), w3c, headers))
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
		t.Errorf("read back %v, want %v", got, sc)
	}
	if keys := (hops.HeaderCarrier{Headers: &headers}).Keys(); strings.Join(keys, ",") != "event-id,traceparent" {
		t.Errorf("keys %v", keys)
	}
}

func TestHistogram(t *testing.T) {
	t.Run("SharedByTheParts", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		writer := hops.NewHistogram(reg, hops.CommandToCommit)
		relay := hops.NewHistogram(reg, hops.CommitToAck) // the same process: one family
		writer.Observe(hops.CommandToCommit, 3*time.Millisecond)
		relay.Observe(hops.CommitToAck, -time.Second) // clocks apart: counts as 0
		const head = `
# HELP annals_hop_seconds Latency of each hop of an event's way through the pipeline: command_to_commit (writer), commit_to_ack (relay), ack_to_fetch and fetch_to_applied (each consumer group). Hops that start in another process include the clocks' difference.
# TYPE annals_hop_seconds histogram
`
		want := head + bucketLines("command_to_commit", 0.003) + bucketLines("commit_to_ack", 0)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), hops.MetricName); err != nil {
			t.Error(err)
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})
	t.Run("Nil", func(t *testing.T) {
		var h *hops.Histogram
		h.Observe(hops.FetchToApplied, time.Second) // must not panic
	})
}

// bucketLines is the exposition of one observation of v seconds on hop.
func bucketLines(hop string, v float64) string {
	var b strings.Builder
	series := func(suffix, le, value string) {
		b.WriteString("annals_hop_seconds" + suffix + `{hop="` + hop + `"`)
		if le != "" {
			b.WriteString(`,le="` + le + `"`)
		}
		b.WriteString("} " + value + "\n")
	}
	for _, le := range hops.Buckets {
		n := "0"
		if v <= le {
			n = "1"
		}
		series("_bucket", strconv.FormatFloat(le, 'g', -1, 64), n)
	}
	series("_bucket", "+Inf", "1")
	series("_sum", "", strconv.FormatFloat(v, 'g', -1, 64))
	series("_count", "", "1")
	return b.String()
}

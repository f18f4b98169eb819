package postgres_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/hops"
)

// TestAppend_Tracing: an append is a span, a child of the caller's, and the events it records
// carry that span's trace context in their metadata, for the relay to publish in the same
// trace.
func TestAppend_Tracing(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	s, _ := newStore(t, postgres.Options{Tracing: hops.Tracing{Provider: tp, Propagator: propagation.TraceContext{}}})

	t.Run("OK", func(t *testing.T) {
		cctx, command := tp.Tracer("test").Start(ctx, "command")
		e := ev(t, "UserCreated", map[string]string{"name": "Ada"})
		e.Metadata = map[string]string{"actor": "alice"}
		if _, err := s.Append(cctx, "user-traced", events.NoStream(), []events.Event{e}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		command.End()
		if _, ok := e.Metadata[hops.MetadataTraceparent]; ok {
			t.Error("the caller's metadata map was changed")
		}
		var appendSpan sdktrace.ReadOnlySpan
		for _, sp := range rec.Ended() {
			if sp.Name() == "append user" && sp.Parent().SpanID() == command.SpanContext().SpanID() {
				appendSpan = sp
			}
		}
		if appendSpan == nil {
			t.Fatalf("no span \"append user\" under the command's span among %d", len(rec.Ended()))
		}
		got, err := s.ReadStream(ctx, "user-traced", 0, -1, 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("read: %v, %d events", err, len(got))
		}
		md := got[0].Metadata
		want := "00-" + appendSpan.SpanContext().TraceID().String() + "-" + appendSpan.SpanContext().SpanID().String() + "-01"
		if md[hops.MetadataTraceparent] != want || md["actor"] != "alice" {
			t.Errorf("metadata %v, want actor alice and traceparent %s", md, want)
		}
	})
	t.Run("OwnTraceparentKept", func(t *testing.T) {
		cctx, command := tp.Tracer("test").Start(ctx, "command")
		defer command.End()
		const own = "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"
		e := ev(t, "UserCreated", map[string]string{"name": "Ada"})
		e.Metadata = map[string]string{hops.MetadataTraceparent: own}
		if _, err := s.Append(cctx, "user-own", events.NoStream(), []events.Event{e}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadStream(ctx, "user-own", 0, -1, 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("read: %v, %d events", err, len(got))
		}
		if got[0].Metadata[hops.MetadataTraceparent] != own {
			t.Errorf("traceparent %q, want the event's own %q", got[0].Metadata[hops.MetadataTraceparent], own)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		rec.Reset()
		_, err := s.Append(ctx, "user-traced", events.NoStream(), []events.Event{ev(t, "UserCreated", map[string]string{})}, events.AppendOptions{})
		if err == nil {
			t.Fatal("a second NoStream append succeeded")
		}
		spans := rec.Ended()
		if len(spans) != 1 || spans[0].Status().Code.String() != "Error" {
			t.Errorf("spans %v, want one append span with an error status", spans)
		}
	})
}

// TestAppend_NoTracing: without a tracer provider and propagator (OpenTelemetry's no-op
// globals), an append adds nothing to the metadata, even under a valid span context.
func TestAppend_NoTracing(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	}))
	s, _ := newStore(t, postgres.Options{})
	e := ev(t, "UserCreated", map[string]string{"name": "Ada"})
	if _, err := s.Append(ctx, "user-plain", events.NoStream(), []events.Event{e}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadStream(ctx, "user-plain", 0, -1, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("read: %v, %d events", err, len(got))
	}
	if len(got[0].Metadata) != 0 {
		t.Errorf("metadata %v, want none", got[0].Metadata)
	}
}

package auditlog

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/consume"
)

// tracer makes the spans of the log's appends: OpenTelemetry's global tracer, a no-op unless
// the service installed an SDK (internal/telemetry).
var tracer = otel.Tracer("github.com/annals-dev/annals/services/auditor/auditlog")

// startAppend starts the span of appending ms: a child of the consumer runtime's span of the
// message when ctx carries it (one event, through Handle), and linked to every message's span
// for a batch, whose context carries none.
func startAppend(ctx context.Context, ms []*consume.Message) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(attribute.Int("annals.events", len(ms)))}
	if cur := trace.SpanContextFromContext(ctx); len(ms) != 1 || !cur.Equal(ms[0].SpanContext()) {
		opts = append(opts, trace.WithLinks(consume.Links(ms)...))
	}
	return tracer.Start(ctx, "audit append", opts...)
}

// endSpan ends an append span, in error when the append failed.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

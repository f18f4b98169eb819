package readmodel

import (
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of applying events: a child of the consumer runtime's process span
// for one event, linked to the events' spans for a batch. It is OpenTelemetry's global
// tracer, a no-op unless the service installed an SDK (internal/telemetry).
var tracer = otel.Tracer("github.com/annals-dev/annals/services/projector/readmodel")

// endSpan ends an apply span, in error when the events did not apply; a batch that goes one by
// one instead (errNotClean) is no error.
func endSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, errNotClean) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

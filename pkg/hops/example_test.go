package hops_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/hops"
)

// A store writes the trace context of the append's span into the metadata of the events it
// appends; a relay, perhaps much later and in another process, reads it back to publish the
// records in the same trace.
func ExampleTraceMetadata() {
	span := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), span)
	w3c := propagation.TraceContext{}

	md := hops.TraceMetadata(ctx, w3c)
	fmt.Println(md[hops.MetadataTraceparent])

	later := hops.FromMetadata(context.Background(), w3c, md)
	fmt.Println(trace.SpanContextFromContext(later).TraceID())
	// Output:
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// 4bf92f3577b34da6a3ce929d0e0e4736
}

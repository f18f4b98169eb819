package hops

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/kafkawire"
)

// Tracing is where a component of the library gets its tracer and its propagator. The zero
// value uses OpenTelemetry's global ones (otel.GetTracerProvider, otel.GetTextMapPropagator),
// read when the component is built.
type Tracing struct {
	// Provider makes the component's tracer; nil means the global provider, a no-op until a
	// program sets one.
	Provider trace.TracerProvider
	// Propagator writes a span's context into metadata and headers and reads it back; nil
	// means the global propagator, which carries nothing until a program sets one.
	Propagator propagation.TextMapPropagator
}

// Tracer returns the tracer of an instrumentation scope: by OpenTelemetry's convention, the
// import path of the package that makes the spans.
func (t Tracing) Tracer(scope string) trace.Tracer {
	p := t.Provider
	if p == nil {
		p = otel.GetTracerProvider()
	}
	return p.Tracer(scope)
}

// TextMapPropagator returns the propagator t uses.
func (t Tracing) TextMapPropagator() propagation.TextMapPropagator {
	if t.Propagator != nil {
		return t.Propagator
	}
	return otel.GetTextMapPropagator()
}

// Metadata keys of the trace context in an event's metadata: the W3C names, as in the
// record headers.
const (
	MetadataTraceparent = kafkawire.HeaderTraceparent
	MetadataTracestate  = kafkawire.HeaderTracestate
)

// MaxTracestateBytes bounds the tracestate kept in an event's metadata. A caller's
// tracestate can hold up to 32 entries of some 500 bytes each; a longer one is left out, so
// that what a caller sends cannot grow the events it causes by more than a few hundred bytes.
const MaxTracestateBytes = 256

// TraceMetadata returns the trace context of ctx's span as metadata entries (traceparent and,
// when short enough, tracestate), or nil when ctx carries no valid span context or the
// propagator writes nothing.
func TraceMetadata(ctx context.Context, prop propagation.TextMapPropagator) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() || len(prop.Fields()) == 0 {
		return nil
	}
	c := propagation.MapCarrier{}
	prop.Inject(ctx, c)
	if c[MetadataTraceparent] == "" {
		return nil
	}
	out := map[string]string{MetadataTraceparent: c[MetadataTraceparent]}
	if ts := c[MetadataTracestate]; ts != "" && len(ts) <= MaxTracestateBytes {
		out[MetadataTracestate] = ts
	}
	return out
}

// FromMetadata returns ctx with the remote span context that an event's metadata carries,
// or ctx itself when it carries none.
func FromMetadata(ctx context.Context, prop propagation.TextMapPropagator, md map[string]string) context.Context {
	if md[MetadataTraceparent] == "" {
		return ctx
	}
	return prop.Extract(ctx, propagation.MapCarrier(md))
}

// HeaderCarrier lets a propagator read and write the headers of a Kafka record. Set replaces
// a header of the same key.
type HeaderCarrier struct{ Headers *[]kafka.Header }

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the value of the first header named key, or "".
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set sets the header named key to value, replacing the first of that name.
func (c HeaderCarrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if h.Key == key {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the headers' keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// FromHeaders returns ctx with the remote span context that a record's headers carry, or ctx
// itself when they carry none.
func FromHeaders(ctx context.Context, prop propagation.TextMapPropagator, headers []kafka.Header) context.Context {
	return prop.Extract(ctx, HeaderCarrier{Headers: &headers})
}

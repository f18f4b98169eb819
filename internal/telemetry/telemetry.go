// Package telemetry installs OpenTelemetry's SDK in a service's process when tracing is
// configured (OTEL_EXPORTER_OTLP_ENDPOINT): a tracer provider that samples as
// OTEL_TRACES_SAMPLER says and sends its spans to the OTLP receiver over HTTP or gRPC, and the
// W3C Trace Context propagator. The library's packages (pkg/hops, pkg/relay, pkg/consume,
// pkg/events/postgres) and the services use OpenTelemetry's API only; this is the one place
// that chooses the SDK and the exporter, so that a library user chooses their own.
//
// It also gives the JSON logs the trace and span ids of the request or message a line is
// about (LogHandler).
//
// It must never block or slow the pipeline for its traces: spans go through a batch processor
// with a bounded queue that drops what it cannot hold, the exporter gives up on a receiver
// after a bounded time, and shutting down waits no longer than its context allows. It must
// never log a span's attributes or a header's value.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/internal/config"
)

// The batch processor's and the exporter's bounds: spans wait at most BatchTimeout before
// they are sent, QueueSize of them at most (more are dropped), and one export gives up after
// ExportTimeout, retries included.
const (
	QueueSize     = 4096
	BatchTimeout  = time.Second
	ExportTimeout = 10 * time.Second
)

// Tracing is OpenTelemetry's SDK as a service installs it.
type Tracing struct {
	provider *sdktrace.TracerProvider
	endpoint string
	protocol string
	sampler  string
}

// New builds the SDK that c asks for, for the service (writer, projector, ...) at version;
// nil when tracing is off (no OTLP endpoint). Nothing connects yet: the exporter connects when
// it first sends, and keeps trying in the background while the receiver is away.
func New(ctx context.Context, c config.Monitoring, service, version string) (*Tracing, error) {
	if c.OTLPEndpoint == "" {
		return nil, nil
	}
	sampler, err := Sampler(c.TracesSampler, c.TracesSamplerArg)
	if err != nil {
		return nil, err
	}
	exp, err := exporter(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = "annals-" + service
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(QueueSize), sdktrace.WithMaxExportBatchSize(512),
			sdktrace.WithBatchTimeout(BatchTimeout), sdktrace.WithExportTimeout(ExportTimeout)),
	)
	return &Tracing{provider: tp, endpoint: c.OTLPEndpoint, protocol: c.OTLPProtocol, sampler: c.TracesSampler}, nil
}

// exporter is the OTLP exporter of c's endpoint and protocol, which gives up on a batch after
// ExportTimeout, retries included.
func exporter(ctx context.Context, c config.Monitoring) (sdktrace.SpanExporter, error) {
	retry := struct{ initial, max, elapsed time.Duration }{500 * time.Millisecond, 2 * time.Second, ExportTimeout}
	if c.OTLPProtocol == "grpc" {
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(c.OTLPEndpoint), otlptracegrpc.WithTimeout(ExportTimeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed}))
	}
	// OTEL_EXPORTER_OTLP_ENDPOINT is the receiver's base URL: the traces go to its /v1/traces.
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimSuffix(c.OTLPEndpoint, "/")+"/v1/traces"),
		otlptracehttp.WithTimeout(ExportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed}))
}

// Sampler is the sampler an OTEL_TRACES_SAMPLER value names, with OTEL_TRACES_SAMPLER_ARG the
// share of the ratio samplers.
func Sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q is not a number from 0 to 1", arg)
		}
		return f, nil
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		f, err := ratio()
		return sdktrace.TraceIDRatioBased(f), err
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		f, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f)), err
	}
	return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q is not supported", name)
}

// Propagator is the propagator of the services: W3C Trace Context alone. Baggage is left out
// on purpose: the trace context travels in every event's metadata, and a caller's baggage
// would grow the events by what the caller sends.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// TracerProvider is the SDK's tracer provider.
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Install makes t OpenTelemetry's global tracer provider, Propagator the global propagator,
// and log receive the SDK's errors (a receiver that cannot be reached, say), at most one a
// minute. The library's packages and the services' own spans use the globals.
func (t *Tracing) Install(log *slog.Logger) {
	otel.SetTracerProvider(t.provider)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(rateLimitedErrors(log, time.Minute))
	log.Info("tracing: spans go to an OTLP receiver", "endpoint", t.endpoint, "protocol", t.protocol, "sampler", t.sampler)
}

// Shutdown sends the spans still queued and stops the SDK, waiting no longer than ctx allows.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// rateLimitedErrors logs the SDK's errors, at most one every interval (the others counted
// in the next line): a receiver that is down fails every batch.
func rateLimitedErrors(log *slog.Logger, every time.Duration) otel.ErrorHandler {
	var mu sync.Mutex
	var last time.Time
	var dropped int
	return otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= every {
			log.Warn("tracing: cannot send spans; the pipeline carries on without them", "error", err, "errors_since_last", dropped)
			last, dropped = now, 0
			return
		}
		dropped++
	})
}

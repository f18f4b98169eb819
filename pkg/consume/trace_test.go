package consume_test

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/schema"
)

// traceSeen is what a handler saw of each event's trace.
type traceSeen struct {
	mu   sync.Mutex
	ctx  map[string]trace.SpanContext // the handler context's span, by stream
	span map[string]trace.SpanContext // Message.SpanContext, by stream
}

func (s *traceSeen) Handle(ctx context.Context, m *consume.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx[m.Event.StreamID] = trace.SpanContextFromContext(ctx)
	s.span[m.Event.StreamID] = m.SpanContext()
	return nil
}

func (s *traceSeen) get(stream string) (ctx, span trace.SpanContext, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, ok = s.ctx[stream]
	return ctx, s.span[stream], ok
}

// spanNamed returns the ended span of rec named name with the given parent span id.
func spanNamed(rec *tracetest.SpanRecorder, name string, parent trace.SpanID) sdktrace.ReadOnlySpan {
	for _, sp := range rec.Ended() {
		if sp.Name() == name && sp.Parent().SpanID() == parent {
			return sp
		}
	}
	return nil
}

// TestConsumer_Tracing: the trace context of a command travels with its event, from the
// append (the event's metadata) through the relay's record (its traceparent header) to the
// consumer's process span, which the handler's context carries: one trace from the command
// to its effect. The hops from the send to the fetch and from the fetch to the end of the
// handling are measured.
func TestConsumer_Tracing(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	tracing := hops.Tracing{Provider: tp, Propagator: propagation.TraceContext{}}

	store := postgres.New(migrated(t), postgres.Options{Tracing: tracing})
	prefix := "test-" + testenv.UniqueName(t)
	topic := kafkawire.Topic(prefix, "user")
	if err := relay.EnsureTopics(ctx, testenv.KafkaBrokers(t), []relay.Topic{{Name: topic, Partitions: 3, ReplicationFactor: 1}}, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...)}
		_, _ = client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	r, err := relay.New(store.Outbox(), relay.SchemaEncoder{Catalog: domain.Catalog()},
		relay.Config{Brokers: testenv.KafkaBrokers(t), TopicPrefix: prefix, Tracing: tracing})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(rctx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone; r.Close() })

	seen := &traceSeen{ctx: map[string]trace.SpanContext{}, span: map[string]trace.SpanContext{}}
	reg := prometheus.NewRegistry()
	cfg := config(t, []string{topic}, testenv.Topic(t, 1), testenv.UniqueName(t))
	cfg.Tracing, cfg.Metrics = tracing, consume.NewMetrics(reg)
	start(t, cfg, seen)

	stream := "user-" + uuid.NewString()
	cctx, command := tp.Tracer("test").Start(ctx, "command")
	e, err := events.NewEvent("UserDeactivated", map[string]string{"reason": "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(cctx, stream, events.NoStream(), []events.Event{e}, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	command.End()
	var inHandler, ofMessage trace.SpanContext
	waitFor(t, time.Minute, "the event", func() bool {
		var ok bool
		inHandler, ofMessage, ok = seen.get(stream)
		return ok
	})

	appendSpan := spanNamed(rec, "append user", command.SpanContext().SpanID())
	if appendSpan == nil {
		t.Fatal("no append span under the command's")
	}
	var publish, process sdktrace.ReadOnlySpan
	waitFor(t, time.Minute, "the publish and process spans to end", func() bool {
		publish = spanNamed(rec, "publish "+topic, appendSpan.SpanContext().SpanID())
		if publish != nil {
			process = spanNamed(rec, "process "+topic, publish.SpanContext().SpanID())
		}
		return process != nil
	})
	if inHandler.TraceID() != command.SpanContext().TraceID() || inHandler.SpanID() != process.SpanContext().SpanID() {
		t.Errorf("the handler's context carries %v, want the process span %v in the command's trace %s",
			inHandler, process.SpanContext(), command.SpanContext().TraceID())
	}
	if !ofMessage.Equal(inHandler) {
		t.Errorf("Message.SpanContext() = %v, want the handler context's %v", ofMessage, inHandler)
	}
	if process.SpanKind() != trace.SpanKindConsumer || process.Status().Code.String() != "Unset" {
		t.Errorf("process span: kind %v, status %v; want a consumer span without error", process.SpanKind(), process.Status())
	}
	for _, hop := range []hops.Hop{hops.AckToFetch, hops.FetchToApplied} {
		if n := histogramCount(t, reg, string(hop)); n != 1 {
			t.Errorf("%s observed %d times, want 1", hop, n)
		}
	}
}

// TestConsumer_TraceFromMetadata: a record without a traceparent header (its relay did not
// trace) is still handled in its command's trace, from the traceparent its event's metadata
// holds.
func TestConsumer_TraceFromMetadata(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	topic := testenv.Topic(t, 1)

	const traceID, appendID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	id := uuid.Must(uuid.NewV7())
	value, fp, err := domain.Catalog().Encode(events.Envelope{
		EventID: id, StreamID: "user-meta", Type: "UserDeactivated", Data: json.RawMessage(`{"reason":"test"}`), RecordedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]string{hops.MetadataTraceparent: "00-" + traceID + "-" + appendID + "-01"})
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("user-meta"), Value: value, Headers: []kafka.Header{
		{Key: kafkawire.HeaderContentType, Value: []byte(schema.ContentTypeAvro)},
		{Key: kafkawire.HeaderFingerprint, Value: []byte(schema.FormatFingerprint(fp))},
		{Key: kafkawire.HeaderMetadata, Value: md},
	}}); err != nil {
		t.Fatal(err)
	}
	seen := &traceSeen{ctx: map[string]trace.SpanContext{}, span: map[string]trace.SpanContext{}}
	cfg := config(t, []string{topic}, testenv.Topic(t, 1), testenv.UniqueName(t))
	cfg.Tracing = hops.Tracing{Provider: tp, Propagator: propagation.TraceContext{}}
	start(t, cfg, seen)
	var inHandler trace.SpanContext
	waitFor(t, time.Minute, "the event", func() bool {
		var ok bool
		inHandler, _, ok = seen.get("user-meta")
		return ok
	})
	if inHandler.TraceID().String() != traceID {
		t.Errorf("handled in trace %s, want the metadata's %s", inHandler.TraceID(), traceID)
	}
	waitFor(t, time.Minute, "the process span to end", func() bool {
		for _, sp := range rec.Ended() {
			if sp.SpanContext().SpanID() == inHandler.SpanID() {
				if sp.Parent().SpanID().String() != appendID {
					t.Errorf("process span under %v, want under the append %s", sp.Parent(), appendID)
				}
				return true
			}
		}
		return false
	})
}

// histogramCount is the number of observations of annals_hop_seconds{hop} in reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, hop string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != hops.MetricName {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "hop" && l.GetValue() == hop {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no %s{hop=%q}", hops.MetricName, hop)
	return 0
}

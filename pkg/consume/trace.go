package consume

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// tracerScope is the instrumentation scope of the runtime's spans.
const tracerScope = "github.com/annals-dev/annals/pkg/consume"

// begin starts the message's process span, from its fetch, as a child of the span its
// record's headers carry (the relay's publish span) or, failing that, of the append whose
// trace context its event's metadata holds; and observes the ack_to_fetch hop.
func (c *Consumer) begin(it *item) {
	start := it.fetchedAt
	if start.IsZero() {
		start = time.Now()
	} else if at, err := time.Parse(time.RFC3339Nano, it.m.Header(kafkawire.HeaderPublishedAt)); err == nil {
		c.cfg.Metrics.hops.Observe(hops.AckToFetch, it.fetchedAt.Sub(at))
	}
	parent := hops.FromHeaders(context.Background(), c.prop, it.raw.Headers)
	if !trace.SpanContextFromContext(parent).IsValid() && it.decodeErr == nil {
		parent = hops.FromMetadata(context.Background(), c.prop, it.m.Event.Metadata)
	}
	_, it.span = c.tracer.Start(parent, "process "+it.m.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start))
	if it.span.IsRecording() { // the attributes cost nothing when nothing records
		it.span.SetAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(it.m.Topic), semconv.MessagingConsumerGroupName(c.cfg.Group),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(it.m.Partition)), semconv.MessagingKafkaOffset(int(it.m.Offset)),
			semconv.MessagingKafkaMessageKey(string(it.m.Key)))
		if it.decodeErr == nil {
			it.span.SetAttributes(semconv.MessagingMessageID(it.m.Event.EventID.String()),
				attribute.String("annals.event_type", it.m.Event.Type), attribute.Int64("annals.stream_version", it.m.Event.Version))
		}
	}
	it.m.span = it.span.SpanContext()
}

// endSpan ends the message's span, once: in error when the message was set aside, or when
// it did not finish (it is delivered again).
func (c *Consumer) endSpan(it *item) {
	if it.span == nil {
		return
	}
	switch {
	case it.outcome != "":
		it.span.SetStatus(codes.Error, it.outcome)
	case !it.done:
		it.span.SetStatus(codes.Error, "not finished; delivered again")
	}
	it.span.End()
	it.span = nil
}

// Links returns a link to the runtime's span of each message that has one: a BatchHandler,
// whose context carries no message's span, gives the span of its work these links, so that
// each message's trace leads to it.
func Links(ms []*Message) []trace.Link {
	links := make([]trace.Link, 0, len(ms))
	for _, m := range ms {
		if m.span.IsValid() {
			links = append(links, trace.Link{SpanContext: m.span})
		}
	}
	return links
}

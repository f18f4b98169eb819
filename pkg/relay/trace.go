package relay

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// tracerScope is the instrumentation scope of the relay's spans.
const tracerScope = "github.com/annals-dev/annals/pkg/relay"

// stampBytes is what stamp adds to a record at most: the published-at header, a traceparent
// and a tracestate of up to hops.MaxTracestateBytes, each with its framing. The byte budgets
// count it in advance (recordSize), so that the stamped records still fit.
const stampBytes = len(kafkawire.HeaderPublishedAt) + len(time.RFC3339Nano) + 10 +
	len(kafkawire.HeaderTraceparent) + 55 + 10 +
	len(kafkawire.HeaderTracestate) + hops.MaxTracestateBytes + 10

// stamp adds to each record of the round, as the round sends it, the headers that the
// signature leaves out: published-at, and the trace context of its append's publish span,
// which it starts here as a child of the append's own span (the traceparent in its events'
// metadata). It returns the spans by batch row; endSpans ends them.
func (r *Relay) stamp(ctx context.Context, rd *round) map[int]trace.Span {
	at := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	propagate := len(r.prop.Fields()) > 0
	spans := make(map[int]trace.Span)
	for j := range rd.msgs {
		m := &rd.msgs[j]
		// A copy: the row's messages share the headers' array, and a round that fails sends
		// them again, stamped anew.
		m.Headers = append(slices.Clip(m.Headers), kafka.Header{Key: kafkawire.HeaderPublishedAt, Value: at})
		i := rd.msgRow[j]
		span, ok := spans[i]
		if !ok {
			span = r.startSpan(ctx, rd, i)
			spans[i] = span
		}
		if propagate && span.SpanContext().IsValid() {
			r.prop.Inject(trace.ContextWithSpan(ctx, span), hops.HeaderCarrier{Headers: &m.Headers})
			if ts := header(*m, kafkawire.HeaderTracestate); len(ts) > hops.MaxTracestateBytes {
				m.Headers = slices.DeleteFunc(m.Headers, func(h kafka.Header) bool { return h.Key == kafkawire.HeaderTracestate })
			}
		}
	}
	return spans
}

// startSpan starts the publish span of batch row i.
func (r *Relay) startSpan(ctx context.Context, rd *round, i int) trace.Span {
	a, part := rd.batch[i], rd.rows[i].part
	parent := hops.FromMetadata(ctx, r.prop, a.Events[0].Metadata)
	_, span := r.tracer.Start(parent, "publish "+part.topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(part.topic), semconv.MessagingDestinationPartitionID(strconv.Itoa(part.partition)),
			semconv.MessagingKafkaMessageKey(a.StreamID), semconv.MessagingBatchMessageCount(len(a.Events)),
			attribute.Int64("annals.first_version", a.FirstVersion), attribute.Int64("annals.last_version", a.LastVersion)))
	return span
}

// endSpans ends the round's publish spans when the broker answered: in error for an append
// that its partition did not acknowledge (it is sent again) or that the broker refused for
// good (it holds its stream).
func endSpans(rd *round, spans map[int]trace.Span, ackedAt time.Time) {
	for i, span := range spans {
		row := &rd.rows[i]
		switch err := rd.failed[row.part]; {
		case row.hold != "":
			span.SetStatus(codes.Error, "held: "+row.hold)
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, "not acknowledged; sent again after a pause")
		}
		span.End(trace.WithTimestamp(ackedAt))
	}
}

package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/events"
)

// Message is one record of a topic, with the event it carries.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	Time      time.Time // the record's timestamp, set by the relay
	// Event is the decoded event (with SchemaDecoder, its metadata comes from the record's
	// metadata header).
	Event events.Envelope
	// Attempt counts the deliveries of this message to the handler in this process, from 1.
	Attempt int

	span trace.SpanContext // of the runtime's process span
}

// SpanContext is the context of the runtime's span for this message (Config.Tracing): a
// BatchHandler, whose context carries no message's span, links the span of its work to
// those of its messages with it. It is not valid when nothing traces the message.
func (m *Message) SpanContext() trace.SpanContext { return m.span }

// Header returns the value of the first header named key, or "".
func (m *Message) Header(key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// String names the message by where it is: topic/partition@offset.
func (m *Message) String() string {
	return fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
}

// Handler handles one message. It returns nil once the message's effect is done; an error
// makes the runtime retry it (unless the error is Permanent) and, when the retries are spent,
// send it to the dead-letter topic and park the later messages of its stream.
//
// A Handler is called concurrently for messages of different streams, and never concurrently
// for two messages of the same stream (same key). It must not wait for another message of its
// own group: the next batch starts only when every lane of the current one has finished, so
// that message may never come while it waits.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// BatchHandler is implemented by a Handler that can take a lane's share of a batch at once,
// for example in a single round trip to its database. When the consumer has a Unit, the runtime
// calls HandleBatch inside one unit with the lane's messages, in order; if it fails, the unit
// rolls back and each message goes through Handle (and the middleware) on its own, with
// retries and dead letters as usual. HandleBatch bypasses the middleware, so it must do
// itself what the handler's middleware would (the inbox, for one), and should fail rather
// than decide anything unusual (a duplicate, a gap, a refused event): Handle will.
type BatchHandler interface {
	HandleBatch(ctx context.Context, ms []*Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler, as the guide's EventHandler middleware does.
type Middleware func(Handler) Handler

// Chain wraps h in mw, the first of mw outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Unit runs fn as one unit of work: for example one database transaction that fn's effects
// join and that commits only when fn returns nil. The runtime runs a lane's share of a batch
// in one unit; when that fails it runs each message in a unit of its own, so a handler may
// see a message again after its unit rolled back, and effects outside the unit must bear
// that. PostgresUnit is the unit of a PostgreSQL sink.
type Unit func(ctx context.Context, fn func(ctx context.Context) error) error

// permanent marks an error that no retry can cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot cure (invalid data, a rule the event breaks):
// the runtime sends the message to the dead-letter topic at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// unavailable marks an error of the infrastructure a handler depends on, not of the message.
type unavailable struct{ err error }

func (u unavailable) Error() string { return u.err.Error() }
func (u unavailable) Unwrap() error { return u.err }

// Unavailable marks err as a failure of a dependency (the database is down or answers a
// deadlock, the mail server refuses connections or answers 4xx, a directory the handler
// reads has not caught up) rather than of the message: the runtime does not count it against
// the message's retries and never dead-letters the message for it; it stops the batch there
// without committing past it, and starts again from the committed offsets after a pause, as
// often as it takes. Unavailable(nil) is nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailable{err}
}

// IsUnavailable reports whether err, or an error it wraps, was marked with Unavailable.
func IsUnavailable(err error) bool {
	var u unavailable
	return errors.As(err, &u)
}

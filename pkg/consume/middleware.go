package consume

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Recover turns a panic in the handler into a Permanent error carrying the panic's value,
// and logs the stack. The runtime puts it outermost on every handler, so a panicking message
// goes to the dead-letter topic instead of ending the process.
func Recover(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if log != nil {
						log.Error("consume: handler panicked", "message", m.String(), "event_id", m.Event.EventID,
							"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					}
					err = Permanent(fmt.Errorf("panic: %v", r))
				}
			}()
			return next.Handle(ctx, m)
		})
	}
}

// Logging logs each message at debug level and each failed attempt at warn level, with the
// event's identity and correlation id (never its data).
func Logging(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next.Handle(ctx, m)
			attrs := []any{"message", m.String(), "event_id", m.Event.EventID, "type", m.Event.Type,
				"stream_id", m.Event.StreamID, "version", m.Event.Version,
				"correlation_id", m.Event.CorrelationID, "attempt", m.Attempt, "took", time.Since(start)}
			if err != nil {
				log.WarnContext(ctx, "consume: handler failed", append(attrs, "error", err)...)
			} else {
				log.DebugContext(ctx, "consume: handled", attrs...)
			}
			return err
		})
	}
}

// Types passes on only the messages whose event type is one of types; the others count as
// processed without reaching the handler.
func Types(types ...string) Middleware {
	set := make(map[string]bool, len(types))
	for _, t := range types {
		set[t] = true
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			if !set[m.Event.Type] {
				return nil
			}
			return next.Handle(ctx, m)
		})
	}
}

// Timing records the handler's time per message, by event type, in
// annals_consumer_handler_seconds.
func Timing(metrics *Metrics, group string) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next.Handle(ctx, m)
			metrics.handler.WithLabelValues(group, m.Event.Type).Observe(time.Since(start).Seconds())
			return err
		})
	}
}

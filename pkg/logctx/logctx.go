// Package logctx carries log attributes in a context.Context, so that every line logged with
// that context carries them: the correlation id of the HTTP request being served, the event id
// and correlation id of the message being handled. Loggers get them through Handler; code
// logs with slog's Context methods (InfoContext, ErrorContext, LogAttrs).
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns a copy of ctx that carries attrs after those ctx carries already. An attribute
// whose key ctx carries already replaces it.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev := Attrs(ctx)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	for _, a := range prev {
		if !has(attrs, a.Key) {
			all = append(all, a)
		}
	}
	all = append(all, attrs...)
	return context.WithValue(ctx, key{}, all)
}

// Attrs returns the attributes ctx carries; the caller must not change them.
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(key{}).([]slog.Attr)
	return a
}

func has(attrs []slog.Attr, k string) bool {
	for _, a := range attrs {
		if a.Key == k {
			return true
		}
	}
	return false
}

// Handler wraps h so that each record gets the attributes of the context it is logged with,
// except those the record (or the logger, through WithAttrs) already has under the same key:
// a JSON line never repeats a key.
func Handler(h slog.Handler) slog.Handler { return &handler{next: h} }

type handler struct {
	next slog.Handler
	// keys are the top-level keys the logger added through WithAttrs.
	keys []string
	// grouped is set once WithGroup was called: the record's attributes then sit in a group,
	// and the context's go there too.
	grouped bool
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	attrs := Attrs(ctx)
	if len(attrs) == 0 {
		return h.next.Handle(ctx, r)
	}
	seen := make(map[string]bool, r.NumAttrs()+len(h.keys))
	for _, k := range h.keys {
		seen[k] = true
	}
	r.Attrs(func(a slog.Attr) bool {
		seen[a.Key] = true
		return true
	})
	extra := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if !seen[a.Key] {
			extra = append(extra, a)
		}
	}
	if len(extra) > 0 {
		r = r.Clone()
		r.AddAttrs(extra...)
	}
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keys := h.keys
	if !h.grouped {
		keys = make([]string, 0, len(h.keys)+len(attrs))
		keys = append(keys, h.keys...)
		for _, a := range attrs {
			keys = append(keys, a.Key)
		}
	}
	return &handler{next: h.next.WithAttrs(attrs), keys: keys, grouped: h.grouped}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithGroup(name), keys: nil, grouped: true}
}

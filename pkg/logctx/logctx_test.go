package logctx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/annals-dev/annals/pkg/logctx"
)

func logged(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		// A repeated key would be lost by json.Unmarshal: count them on the raw line.
		if n := strings.Count(line, `"correlation_id"`); n > 1 {
			t.Errorf("correlation_id %d times in %s", n, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, m)
	}
	return out
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logctx.Handler(slog.NewJSONHandler(&buf, nil))).With("service", "writer")
	ctx := logctx.With(context.Background(), slog.String("correlation_id", "c-1"))
	ctx = logctx.With(ctx, slog.String("event_id", "e-1"))

	log.InfoContext(ctx, "with context")
	log.Info("without context")
	log.InfoContext(ctx, "explicit key wins", "correlation_id", "c-explicit")
	log.InfoContext(logctx.With(ctx, slog.String("correlation_id", "c-2")), "replaced")
	log.WithGroup("g").InfoContext(ctx, "grouped", "k", "v")

	lines := logged(t, &buf)
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	check := func(i int, key string, want any) {
		t.Helper()
		if got := lines[i][key]; got != want {
			t.Errorf("line %d (%s): %s = %v, want %v", i, lines[i]["msg"], key, got, want)
		}
	}
	check(0, "correlation_id", "c-1")
	check(0, "event_id", "e-1")
	check(0, "service", "writer")
	check(1, "correlation_id", nil)
	check(2, "correlation_id", "c-explicit")
	check(2, "event_id", "e-1")
	check(3, "correlation_id", "c-2")
	g, _ := lines[4]["g"].(map[string]any)
	if g["correlation_id"] != "c-1" || g["k"] != "v" {
		t.Errorf("grouped line: %v", lines[4])
	}
}

// TestHandler_LoggerAttrWins: a key the logger has (With) is not repeated from the context.
func TestHandler_LoggerAttrWins(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logctx.Handler(slog.NewJSONHandler(&buf, nil))).With("correlation_id", "from-logger")
	log.InfoContext(logctx.With(context.Background(), slog.String("correlation_id", "from-ctx")), "x")
	if got := logged(t, &buf)[0]["correlation_id"]; got != "from-logger" {
		t.Errorf("correlation_id = %v, want from-logger", got)
	}
}

// TestWith_DoesNotShare: contexts derived from one parent do not see each other's attributes.
func TestWith_DoesNotShare(t *testing.T) {
	parent := logctx.With(context.Background(), slog.String("a", "1"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			v := string(rune('a' + i))
			ctx := logctx.With(parent, slog.String("b", v))
			attrs := logctx.Attrs(ctx)
			if len(attrs) != 2 || attrs[1].Value.String() != v {
				t.Errorf("attrs = %v", attrs)
			}
		})
	}
	wg.Wait()
	if n := len(logctx.Attrs(parent)); n != 1 {
		t.Errorf("parent has %d attrs, want 1", n)
	}
}

package auditlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Paging limits of Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query selects a page of entries in sequence order. Every filter that is set must match.
type Query struct {
	StreamID string
	Types    []string  // any of these event types; empty: every type
	Since    time.Time // recorded at or after; zero: no lower bound
	Until    time.Time // recorded before; zero: no upper bound
	After    int64     // entries after this sequence number (0: from the first)
	Limit    int       // DefaultLimit when 0, at most MaxLimit
}

// Query returns the entries that q selects, in sequence order, and whether more follow the
// page.
func (l *Log) Query(ctx context.Context, q Query) ([]Entry, bool, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var where []string
	args := []any{q.After}
	where = append(where, "seq > $1")
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.StreamID != "" {
		where = append(where, "stream_id = "+arg(q.StreamID))
	}
	if len(q.Types) == 1 {
		where = append(where, "event_type = "+arg(q.Types[0]))
	} else if len(q.Types) > 1 {
		where = append(where, "event_type = any("+arg(q.Types)+")")
	}
	if !q.Since.IsZero() {
		where = append(where, "recorded_at >= "+arg(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "recorded_at < "+arg(q.Until))
	}
	sql := `select ` + entryColumns + ` from annals_audit_log where ` + strings.Join(where, " and ") +
		` order by seq limit ` + arg(limit+1)
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("audit log query: %w", err)
	}
	defer rows.Close()
	out := make([]Entry, 0, min(limit+1, 64))
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, false, fmt.Errorf("audit log query: entry %d: %w", e.Seq, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("audit log query: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

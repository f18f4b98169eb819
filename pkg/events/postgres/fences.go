package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// Fence is an append whose transaction is still open (all.go): until it commits or rolls back,
// the all-stream (ReadAll, Head, and so GET /v1/events and GET /v1/subscribe) stops below its
// floor. An append's transaction normally lasts milliseconds; one left open (a client that
// appended with AppendTx and never committed, a session idle in its transaction) holds the
// all-stream for as long as it stays open.
type Fence struct {
	// PID is the PostgreSQL backend that holds the fence.
	PID int32 `json:"pid"`
	// Floor is the fence's floor: the all-stream stops at it.
	Floor int64 `json:"floor"`
	// Since is when the transaction began; zero when this role may not see it.
	Since time.Time `json:"since"`
	// State is the backend's state (pg_stat_activity): active, idle in transaction, ...
	State string `json:"state"`
	// Application is the backend's application_name.
	Application string `json:"application"`
}

// fencesSQL lists the fences on the events table, lowest floor first, with what
// pg_stat_activity says of their backends.
const fencesSQL = `with l as materialized (select ` + lastPosition + ` as seq_last)
select f.pid, min(seq_last - (mod(seq_last - f.objid::bigint + 6442450944, 4294967296) - 2147483648)) as floor,
	a.xact_start, coalesce(a.state, ''), coalesce(a.application_name, '')
from l, pg_locks f left join pg_stat_activity a on a.pid = f.pid
where f.locktype = 'advisory' and f.objsubid = 2 and f.classid = ` + fenceClass + `
  and f.database = (select oid from pg_database where datname = current_database())
group by f.pid, a.xact_start, a.state, a.application_name
order by floor, f.pid`

// Fences lists the open appends that hold the all-stream, lowest floor first.
func (s *Store) Fences(ctx context.Context) ([]Fence, error) {
	rows, err := s.pool.Query(ctx, fencesSQL)
	if err != nil {
		return nil, fmt.Errorf("fences: %w", err)
	}
	defer rows.Close()
	var out []Fence
	for rows.Next() {
		var f Fence
		var since *time.Time
		if err := rows.Scan(&f.PID, &f.Floor, &since, &f.State, &f.Application); err != nil {
			return nil, fmt.Errorf("fences: %w", err)
		}
		if since != nil {
			f.Since = since.UTC()
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fences: %w", err)
	}
	return out, nil
}

// EndFence ends the session of backend pid, which must hold a fence on this store, and waits
// up to five seconds for it to be gone: its open transaction rolls back, appends included, and
// the all-stream moves on. It returns events.ErrNotFound when pid holds no fence here (it ended
// meanwhile, or it is another store's), and an error when this role may not end it or it did
// not end in time.
func (s *Store) EndFence(ctx context.Context, pid int32) error {
	var ended *bool
	err := s.pool.QueryRow(ctx, `select bool_or(pg_terminate_backend(pid, 5000)) from (
			select distinct pid from pg_locks
			where locktype = 'advisory' and objsubid = 2 and classid = `+fenceClass+` and pid = $1
			  and database = (select oid from pg_database where datname = current_database())) f`, pid).Scan(&ended)
	switch {
	case err != nil:
		return fmt.Errorf("end fence of backend %d: %w", pid, err)
	case ended == nil:
		return fmt.Errorf("end fence of backend %d: %w", pid, events.ErrNotFound)
	case !*ended:
		return fmt.Errorf("end fence of backend %d: it did not end within 5 s", pid)
	}
	return nil
}

// WatchFences measures the open appends every interval until ctx ends, into
// Options.Metrics: how many hold the all-stream, and how long the oldest has. A failed
// measure leaves the last values. Run it in its own goroutine.
func (s *Store) WatchFences(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if fs, err := s.Fences(ctx); err == nil {
			s.opts.Metrics.fenced(fs, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

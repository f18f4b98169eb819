package testenv

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RoundTrips counts the round trips that the connections of a CountingPool make to the
// server, and the statements they carry: a statement sent alone (Exec, Query, QueryRow, a
// transaction's begin or commit) is one round trip and one statement; a batch (SendBatch) is
// one round trip and a statement per queued query. The preparation of a statement that a
// connection has not cached yet is not counted: it happens once per connection.
type RoundTrips struct {
	trips, statements atomic.Int64
	mu                sync.Mutex
	log               []string
	pids              []uint32 // of the server's backends of the pool's connections
}

var (
	_ pgx.QueryTracer = (*RoundTrips)(nil)
	_ pgx.BatchTracer = (*RoundTrips)(nil)
)

// Trips is the number of round trips counted so far.
func (r *RoundTrips) Trips() int64 { return r.trips.Load() }

// Statements is the number of statements counted so far.
func (r *RoundTrips) Statements() int64 { return r.statements.Load() }

// Log returns the statements sent since the last call, in order, each batch's as one entry of
// its statements joined by " | ", and forgets them.
func (r *RoundTrips) Log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

func (r *RoundTrips) note(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

// TraceQueryStart counts a statement sent alone.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.trips.Add(1)
	r.statements.Add(1)
	r.note(data.SQL)
	return ctx
}

// TraceQueryEnd does nothing.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts a batch.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	r.trips.Add(1)
	r.statements.Add(int64(data.Batch.Len()))
	s := ""
	for i, q := range data.Batch.QueuedQueries {
		if i > 0 {
			s += " | "
		}
		s += q.SQL
	}
	r.note(s)
	return ctx
}

// TraceBatchQuery does nothing.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd does nothing.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// ServerCPU is the CPU time that the server's backends of the pool's connections have spent
// so far, as Linux's scheduler counts it (/proc/<pid>/schedstat): it needs the server on this
// machine, and is 0 otherwise. A connection that has ended no longer counts.
func (r *RoundTrips) ServerCPU() time.Duration {
	r.mu.Lock()
	pids := slices.Clone(r.pids)
	r.mu.Unlock()
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

// ProcessCPU is the CPU time, user and system, that this process has spent so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPU is a reading of ServerCPU and ProcessCPU, for a benchmark to report the CPU time spent
// per operation on either side.
type CPU struct {
	rt             *RoundTrips
	trips, stmts   int64
	server, client time.Duration
}

// Start reads the counters.
func (r *RoundTrips) Start() CPU {
	return CPU{rt: r, trips: r.Trips(), stmts: r.Statements(), server: r.ServerCPU(), client: ProcessCPU()}
}

// Report reports, per op of n, the round trips, the statements, and the CPU time of the
// server's backends and of this process since Start.
func (c CPU) Report(b *testing.B, n int, op string) {
	if n == 0 {
		return
	}
	f := float64(n)
	b.ReportMetric(float64(c.rt.Trips()-c.trips)/f, "round-trips/"+op)
	b.ReportMetric(float64(c.rt.Statements()-c.stmts)/f, "statements/"+op)
	b.ReportMetric(float64(c.rt.ServerCPU()-c.server)/f/1e3, "server-µs/"+op)
	b.ReportMetric(float64(ProcessCPU()-c.client)/f/1e3, "client-µs/"+op)
}

// Bench runs op warm times first (statements prepared, caches filled), then once per
// iteration of b's loop, and reports per op what Report does over the loop.
func (r *RoundTrips) Bench(b *testing.B, unit string, warm int, op func()) {
	for range warm {
		op()
	}
	cpu, n := r.Start(), 0
	for b.Loop() {
		op()
		n++
	}
	cpu.Report(b, n, unit)
}

// CountingPool is a pool on schema (one of SchemaPool's) whose round trips rt counts; it is
// closed when the test ends.
func CountingPool(tb testing.TB, schema string) (*pgxpool.Pool, *RoundTrips) {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(SchemaURL(tb, schema))
	if err != nil {
		tb.Fatal(err)
	}
	rt := &RoundTrips{}
	cfg.ConnConfig.Tracer = rt
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		rt.mu.Lock()
		rt.pids = append(rt.pids, c.PgConn().PID())
		rt.mu.Unlock()
		return nil
	}
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool, rt
}

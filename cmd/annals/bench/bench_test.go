package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/load"
	"github.com/annals-dev/annals/internal/testenv"
)

func TestHistogramQuantile(t *testing.T) {
	h := histogram{bounds: []float64{0.01, 0.02, 0.04}, counts: []float64{10, 90, 100}, count: 100}
	for _, tc := range []struct{ q, want float64 }{{0.05, 0.005}, {0.5, 0.015}, {0.95, 0.03}} {
		if got := h.quantile(tc.q); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (histogram{}).quantile(0.5); got != 0 {
		t.Errorf("quantile of an empty histogram = %v, want 0", got)
	}
}

func TestHistogramDelta(t *testing.T) {
	family := func(count uint64, sum float64, buckets ...uint64) map[string]*dto.MetricFamily {
		var bs []*dto.Bucket
		for i, c := range buckets {
			bs = append(bs, &dto.Bucket{UpperBound: ptr(float64(i + 1)), CumulativeCount: ptr(c)})
		}
		return map[string]*dto.MetricFamily{"h": {Name: ptr("h"), Metric: []*dto.Metric{{
			Label:     []*dto.LabelPair{{Name: ptr("group"), Value: ptr("g")}},
			Histogram: &dto.Histogram{SampleCount: ptr(count), SampleSum: ptr(sum), Bucket: bs},
		}}}}
	}
	d := histogramDelta(family(10, 5, 4, 10), family(30, 25, 14, 30), "h", map[string]string{"group": "g"})
	if d.count != 20 || d.sum != 20 || !slices.Equal(d.counts, []float64{10, 20}) {
		t.Errorf("delta = %+v, want 20 samples summing to 20 in buckets [10 20]", d)
	}
	if d := histogramDelta(family(1, 1, 1), family(2, 2, 2), "h", map[string]string{"group": "other"}); d.count != 0 {
		t.Errorf("another group's delta = %+v, want nothing", d)
	}
}

// fakeRun is a runner holding a whole run's measurements, made up: pgbench's event rows give
// PostgreSQL a 100-row/1-row ratio of 12, the appends one of 100.
func fakeRun() *runner {
	r := &runner{set: DefaultSettings(true, 12)}
	for _, c := range []int{1, 8, 32} {
		r.raw.PGBench = append(r.raw.PGBench, PGBench{Clients: c, TPS: 1000 * float64(c), Latency: benchkit.Latency{P50: time.Millisecond, P99: 5 * time.Millisecond},
			CPUMsPerTx: 0.15})
		r.raw.Commands = append(r.raw.Commands, CommandRun{Clients: c, EventsPerSec: 100 * float64(c),
			Result: load.Result{Throughput: 100 * float64(c), P50: 5 * time.Millisecond, P99: 20 * time.Millisecond}})
	}
	for _, c := range []int{1, 8} {
		for _, rows := range []int{1, 100} {
			tps := 900 * float64(c)
			if rows > 1 {
				tps = 12 * tps / float64(rows)
			}
			r.raw.PGBenchEvents = append(r.raw.PGBenchEvents, PGBenchEvents{Rows: rows, RowsPerSec: tps * float64(rows),
				PGBench: PGBench{Clients: c, TPS: tps, Latency: benchkit.Latency{P50: time.Millisecond, P99: 4 * time.Millisecond}}})
		}
	}
	for _, batch := range []int{1, 100} {
		for _, c := range []int{1, 8} {
			r.raw.Appends = append(r.raw.Appends, AppendRun{Batch: batch, Concurrency: c, Result: benchkit.Throughput{EventsPerSec: float64(700 * batch * c)}})
		}
	}
	r.raw.Producer = Producer{RecordsPerSec: 50_000}
	r.raw.Consumer = Consumer{FetchRecordsPerSec: 100_000}
	r.raw.KafkaLatency = Latencies{P50Ms: 2, P99Ms: 10}
	r.raw.SMTP = SMTP{EmailsPerSec: 500}
	r.raw.Relay = RelayRun{EventsPerSec: 30_000}
	r.raw.NoOp, r.raw.Projector, r.raw.Auditor = benchkit.Drain{EventsPerSec: 60_000}, benchkit.Drain{EventsPerSec: 8_000}, benchkit.Drain{EventsPerSec: 6_000}
	r.raw.Notifier = benchkit.Drain{EmailsPerSec: 200}
	for _, name := range []string{"redis", "mongodb"} {
		st := StoreRun{Store: name, BaselineTool: name + "'s tool", Relay: RelayRun{EventsPerSec: 20_000}}
		for _, c := range StoreClients {
			st.Baseline = append(st.Baseline, StoreBaseline{Clients: c, OpsPerSec: 5000 * float64(c)})
			st.Appends = append(st.Appends, AppendRun{Batch: 1, Concurrency: c, Result: benchkit.Throughput{EventsPerSec: 2500 * float64(c)}})
		}
		r.raw.Stores = append(r.raw.Stores, st)
	}
	r.raw.EndToEndFixed = EndToEnd{Rate: 20, Latency: benchkit.Latency{P50: 6 * time.Millisecond, P99: 20 * time.Millisecond}}
	r.raw.Cost = costOf(150, load.Result{Commands: 1500}, map[string]float64{"postgres": 10, "kafka": 5},
		map[string]float64{"postgres": 13, "kafka": 7, "writer": 2, "projector": 1.25, "notifier": 1.25, "auditor": 1.25, "mailpit": 0.5}, 1)
	for range r.set.EndToEndFractions {
		r.raw.EndToEnd = append(r.raw.EndToEnd, EndToEnd{Latency: benchkit.Latency{P50: 12 * time.Millisecond, P99: 150 * time.Millisecond}})
	}
	return r
}

// TestFigures: a run's measurements give every figure of FigureIDs, each Annals figure set
// against its baseline, and the nine targets judged; PostgreSQL's own batch ratio is on
// pgbench's 100-row baselines and beside the appends' batch targets, which it leaves alone.
func TestFigures(t *testing.T) {
	r := fakeRun()
	baselines, figures, curves := r.figures()
	var got []string
	for _, f := range append(slices.Clone(baselines), figures...) {
		got = append(got, f.ID)
		if f.Unit == "" || f.Value <= 0 {
			t.Errorf("%s: value %v %q", f.ID, f.Value, f.Unit)
		}
	}
	want := append(FigureIDs(), StoreFigureIDs("redis", "mongodb")...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("figures:\n got %v\nwant %v", got, want)
	}
	met, missed := 0, 0
	for _, f := range figures {
		if f.Baseline == nil || f.Ratio == nil {
			t.Errorf("%s has no baseline or ratio", f.ID)
		}
		if f.Target != nil {
			if f.Target.Met {
				met++
			} else {
				missed++
			}
		}
	}
	// Single appends at 0.7 and 0.875 of pgbench, batches 100×, the relay 0.6 of PP and 100×
	// the writer, the no-op consumer 0.6 of ConsumerPerformance, 6 and 20 ms at 20/s: met;
	// p99 150 ms at 25% and 50%, 8 clients at 0.1× pgbench, 7.5 ms per command: missed.
	if met != 10 || missed != 4 {
		t.Errorf("%d targets met and %d missed, want 10 and 4", met, missed)
	}
	if len(curves) != 4 || len(curves[3].Points) != 3 {
		t.Errorf("curves %+v, want four, the end-to-end one of three points", curves)
	}
	byID := map[string]Figure{}
	for _, f := range append(slices.Clone(baselines), figures...) {
		byID[f.ID] = f
	}
	for _, c := range []int{1, 8} {
		one, batch := byID[fmt.Sprintf("pgbench.events.single.c%d.events_per_sec", c)], byID[fmt.Sprintf("pgbench.events.batch100.c%d.events_per_sec", c)]
		if one.Value != 900*float64(c) || batch.Value != 12*900*float64(c) || one.Unit != "events/s" || batch.Unit != "events/s" {
			t.Errorf("%d client(s): pgbench's event rows %v and %v, want %v and %v events/s", c, one.Value, batch.Value, 900*c, 12*900*c)
		}
		if !strings.Contains(batch.Detail, "12.0× the events/s of 1-row tx") || strings.Contains(one.Detail, "×") {
			t.Errorf("%d client(s): details %q and %q, want the ratio of 12.0 on the batch's", c, one.Detail, batch.Detail)
		}
		// The appends' batch figure keeps its own ratio and target, with PostgreSQL's beside it.
		a := byID[fmt.Sprintf("appends.batch100.c%d.events_per_sec", c)]
		if a.Ratio == nil || *a.Ratio != 100 || a.Baseline.ID != fmt.Sprintf("appends.single.c%d.events_per_sec", c) ||
			a.Target == nil || a.Target.Bound != 20 || !a.Target.Met {
			t.Errorf("%s: ratio %v against %+v, target %+v; want 100 against the single appends, ≥ 20 met", a.ID, a.Ratio, a.Baseline, a.Target)
		}
		if !strings.Contains(a.Detail, "PostgreSQL's own 100-row/1-row ratio here: 12.0×") {
			t.Errorf("%s: detail %q, want PostgreSQL's own ratio", a.ID, a.Detail)
		}
	}
}

// TestCost: the processor time per command is every program's time over the run, and the
// figure lists them, the largest first, against pgbench's time per transaction.
func TestCost(t *testing.T) {
	r := fakeRun()
	if got := r.raw.Cost.MsPerCommand; math.Abs(got-7.5) > 1e-9 {
		t.Errorf("ms per command %v, want 7.5", got)
	}
	_, figures, _ := r.figures()
	for _, f := range figures {
		if f.ID != "cost.cpu_ms_per_command" {
			continue
		}
		if !strings.HasPrefix(f.Detail, "postgres 2.00, kafka 1.33, writer 1.33, ") || f.Baseline.ID != "pgbench.c8.cpu_ms_per_tx" ||
			math.Abs(*f.Ratio-50) > 1e-9 || f.Target == nil || f.Target.Met {
			t.Errorf("%+v (ratio %v, target %+v): want the breakdown largest first, 50× pgbench's, the 5 ms target missed", f, *f.Ratio, f.Target)
		}
		return
	}
	t.Error("no cost figure")
}

// TestReadProc: this process's processor time, read from /proc, grows with work it does.
func TestReadProc(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	before, ok := readProc(pid)
	if !ok || before.comm == "" {
		t.Fatalf("readProc(self) = %+v, %v", before, ok)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 10_000_000 {
			x += i % 7
		}
		after, _ := readProc(pid)
		if after.own > before.own {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processor time stayed at %v s after 10 s of work (%d)", before.own, x)
		}
	}
}

// TestFiguresWithoutPGBenchEvents: a run without pgbench's event rows (the results of an
// older run) gives the same figures less those baselines, and no ratio of PostgreSQL's.
func TestFiguresWithoutPGBenchEvents(t *testing.T) {
	r := fakeRun()
	r.raw.PGBenchEvents = nil
	baselines, figures, _ := r.figures()
	for _, f := range append(baselines, figures...) {
		if strings.HasPrefix(f.ID, "pgbench.events.") || strings.Contains(f.Detail, "PostgreSQL's own") {
			t.Errorf("%s (%q) without pgbench's event rows", f.ID, f.Detail)
		}
	}
}

// TestPrintTable: the table lists pgbench's event rows among the baselines, and PostgreSQL's
// own batch ratio on the rows of the batch target, which stays as it was judged.
func TestPrintTable(t *testing.T) {
	r := fakeRun()
	r.raw.Appends[2].Result.EventsPerSec = 700 * 100 / 10 // 10× the single appends: missed
	res := &Results{Quick: true, Settings: r.set, Raw: r.raw}
	res.Baselines, res.Figures, res.Curves = r.figures()
	for _, f := range res.Figures {
		if f.Target != nil && f.Target.Met {
			res.TargetsMet++
		} else if f.Target != nil {
			res.TargetsMissed++
		}
	}
	var b bytes.Buffer
	res.PrintTable(&b)
	// The columns' widths are tabwriter's: compare the lines with single spaces.
	var lines []string
	for l := range strings.Lines(b.String()) {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Errorf("no line %q in the table:\n%s", prefix, b.String())
		return ""
	}
	for _, tc := range []struct{ prefix, want string }{
		{"pgbench 1-row event INSERT tx, 1 client(s)", "900 events/s 900 tx/s, p50 1.00 ms, p99 4.00 ms per tx"},
		{"pgbench 100-row event INSERT tx, 8 client(s)", "86,400 events/s 864 tx/s, p50 1.00 ms, p99 4.00 ms per tx; 12.0× the events/s of 1-row tx"},
		{"library appends of 100 events, 1 appender(s)", "10.00 ratio >= 20 MISSED p50 0.00 ms, p99 0.00 ms per append; PostgreSQL's own 100-row/1-row ratio here: 12.0×"},
		{"library appends of 100 events, 8 appender(s)", "100.00 ratio >= 20 met p50 0.00 ms, p99 0.00 ms per append; PostgreSQL's own 100-row/1-row ratio here: 12.0×"},
		{"MISSED 100-event batches ≥ 20× the events/s of single appends, 1 appender(s)", ": 10.00× (7,000 events/s against 700 events/s)"},
	} {
		if l := find(tc.prefix); l != "" && !strings.Contains(l, tc.want) {
			t.Errorf("line %q, want %q in it", l, tc.want)
		}
	}
}

// TestPGBenchEventRows runs pgbench briefly on the event store's table, one row and a batch
// per transaction, and reads the rows back: each transaction's stream and its versions, and
// the ids, the sequence's numbers 1 to n, rising with the versions of a stream.
func TestPGBenchEventRows(t *testing.T) {
	pgbench := os.Getenv("PGBENCH")
	if pgbench == "" {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
		if len(found) > 0 {
			pgbench = found[len(found)-1]
		} else if p, err := exec.LookPath("pgbench"); err == nil {
			pgbench = p
		}
	}
	url := testenv.PostgresURL(t)
	if pgbench == "" {
		if testing.Short() {
			t.Skip("pgbench not found (PGBENCH, /usr/lib/postgresql/*/bin, PATH)")
		}
		t.Fatal("pgbench not found (PGBENCH, /usr/lib/postgresql/*/bin, PATH): PostgreSQL's server package ships it")
	}
	pool, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if err := PGBenchEventsSchema(ctx, pool, schema); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ rows, clients int }{{1, 2}, {100, 1}} {
		p, err := PGBenchEventRows(ctx, pgbench, url, schema, dir, tc.rows, tc.clients, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if p.Rows != tc.rows || p.Clients != tc.clients || p.TPS <= 0 || p.RowsPerSec != p.TPS*float64(tc.rows) || p.Latency.Count == 0 {
			t.Errorf("%d row(s), %d client(s): %+v", tc.rows, tc.clients, p)
		}
		t.Logf("%d row(s) per tx, %d client(s): %.0f tx/s, %.0f events/s", tc.rows, tc.clients, p.TPS, p.RowsPerSec)
	}
	// Streams by their events, those whose versions or fields are not the workload's, and ids
	// out of a stream's order or other than the sequence's 1 to n.
	var one, batch, bad, badIDs int
	if err := pool.QueryRow(ctx, `select count(*) filter (where n = 1), count(*) filter (where n = 100),
			count(*) filter (where not (ok and (n = 1 and last = 0 or n = 100 and first = 0 and last = 99))),
			(select count(*) from (select event_id < lag(event_id) over (partition by stream_id order by version) as down
				from annals_events) d where down)
			+ (select (max(event_id::text) <> lpad(to_hex(count(*)), 32, '0')::uuid::text)::int from annals_events)
		from (select count(*) as n, min(version) as first, max(version) as last,
			bool_and(type = 'ItemAdded' and category = 'order' and data::text = $1 and metadata::text = '{}'
				and correlation_id = 'bench' and causation_id = 'bench' and schema_version = 1) as ok
			from annals_events group by stream_id) s`,
		benchkit.AppendPayload).Scan(&one, &batch, &bad, &badIDs); err != nil {
		t.Fatal(err)
	}
	if one == 0 || batch == 0 || bad != 0 || badIDs != 0 {
		t.Errorf("%d streams of 1 event and %d of 100, %d other, %d ids out of order; want both kinds, nothing else", one, batch, bad, badIDs)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {0.3271, "0.327"}, {15.31, "15.3"}, {100, "100"}, {1234567.4, "1,234,567"}, {-4200, "-4,200"}} {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseRedisBenchmark reads redis-benchmark's CSV, whose command field keeps the quotes of
// the event-sized value unescaped.
func TestParseRedisBenchmark(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"XADD {b}:baseline * data {"item":{"id":"sku-1","name":"A thing"}}","4668.53","0.207","0.128","0.199","0.279","0.351","2.703"
`
	b, err := parseRedisBenchmark([]byte(out), 8)
	if err != nil {
		t.Fatal(err)
	}
	if b.Clients != 8 || b.OpsPerSec != 4668.53 || b.Latency.P50 != 199*time.Microsecond || b.Latency.P99 != 351*time.Microsecond || b.Latency.Max != 2703*time.Microsecond {
		t.Errorf("parsed %+v", b)
	}
	if _, err := parseRedisBenchmark([]byte(`"test","rps"`+"\n"), 1); err == nil {
		t.Error("a header without a row parsed")
	}
}

// TestRedisBenchmarkArgs: redis-benchmark reaches the server of the URL, over TLS when the URL
// says rediss://, with the server name of the URL and without verifying the certificate only
// when the URL asks so.
func TestRedisBenchmarkArgs(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		want      string
	}{
		{"Plain", "redis://u@cache:6380/2", "env -h cache -p 6380 --dbnum 2 -c 4 -n 100 --csv --user u XADD k * data"},
		{"DefaultPort", "redis://cache", "env -h cache -p 6379 --dbnum 0 -c 4 -n 100 --csv XADD k * data"},
		{"TLS", "rediss://cache.example:6390/1", "env -h cache.example -p 6390 --dbnum 1 -c 4 -n 100 --csv --tls --sni cache.example XADD k * data"},
		{"TLSSkipVerify", "rediss://10.0.0.7:6390?skip_verify=true", "env -h 10.0.0.7 -p 6390 --dbnum 0 -c 4 -n 100 --csv --tls --sni 10.0.0.7 --insecure XADD k * data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := goredis.ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			args := redisBenchmarkArgs([]string{"env"}, opt, "k", 4, 100)
			if last := args[len(args)-1]; last != benchkit.AppendPayload {
				t.Errorf("last argument %q, want the event-sized value", last)
			}
			if got := strings.Join(args[:len(args)-1], " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

package bench

import (
	"fmt"
	"math"

	"github.com/annals-dev/annals/internal/benchkit"
)

// FigureIDs are the ids of every figure a run reports, baselines first; a run that lacks one
// is incomplete.
func FigureIDs() []string {
	ids := []string{"pgbench.c1.tps", "pgbench.c8.tps", "pgbench.c32.tps",
		"pgbench.events.single.c1.events_per_sec", "pgbench.events.batch100.c1.events_per_sec",
		"pgbench.events.single.c8.events_per_sec", "pgbench.events.batch100.c8.events_per_sec",
		"kafka.producer.records_per_sec", "kafka.consumer.records_per_sec", "kafka.e2e.p50_ms", "kafka.e2e.p99_ms",
		"smtp.emails_per_sec", "pgbench.c8.cpu_ms_per_tx"}
	for _, c := range []int{1, 8, 32} {
		ids = append(ids, fmt.Sprintf("commands.c%d.commands_per_sec", c), fmt.Sprintf("commands.c%d.p50_ms", c), fmt.Sprintf("commands.c%d.p99_ms", c))
	}
	ids = append(ids, "writer.peak_events_per_sec",
		"appends.single.c1.events_per_sec", "appends.single.c8.events_per_sec",
		"appends.batch100.c1.events_per_sec", "appends.batch100.c8.events_per_sec",
		"relay.events_per_sec", "relay.events_per_sec_vs_writer",
		"consumer.noop.events_per_sec", "projector.events_per_sec", "auditor.events_per_sec", "notifier.emails_per_sec")
	for _, p := range []int{25, 50, 75} {
		ids = append(ids, fmt.Sprintf("e2e.%d.p50_ms", p), fmt.Sprintf("e2e.%d.p99_ms", p))
	}
	ids = append(ids, "e2e.fixed.p50_ms", "e2e.fixed.p99_ms", "cost.cpu_ms_per_command")
	return ids
}

// figures turns the raw measurements into the report's figures, ratios and targets, and the
// plot's curves.
func (r *runner) figures() (baselines, figures []Figure, curves []Curve) {
	raw := r.raw
	byID := map[string]Figure{}
	base := func(f Figure) {
		baselines = append(baselines, f)
		byID[f.ID] = f
	}
	add := func(f Figure) *Figure {
		figures = append(figures, f)
		byID[f.ID] = f
		return &figures[len(figures)-1]
	}
	// add's pointer is only good until the next add; set works on the figure just added.
	set := func(f Figure, against string, target func(*Figure)) {
		g := add(f)
		if b, ok := byID[against]; ok {
			g.against(b)
		}
		if target != nil {
			target(g)
		}
		byID[g.ID] = *g
	}

	pg := map[int]PGBench{}
	pgCurve := Curve{Name: "pgbench, one INSERT per transaction", Unit: "tx/s"}
	for _, p := range raw.PGBench {
		pg[p.Clients] = p
		base(Figure{ID: fmt.Sprintf("pgbench.c%d.tps", p.Clients), Name: fmt.Sprintf("pgbench 1-INSERT tx, %d client(s)", p.Clients),
			Value: p.TPS, Unit: "tx/s", Detail: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", benchkit.Ms(p.Latency.P50), benchkit.Ms(p.Latency.P99))})
		byID[fmt.Sprintf("pgbench.c%d.p50_ms", p.Clients)] = Figure{ID: fmt.Sprintf("pgbench.c%d.p50_ms", p.Clients),
			Name: fmt.Sprintf("pgbench p50, %d client(s)", p.Clients), Value: benchkit.Ms(p.Latency.P50), Unit: "ms"}
		byID[fmt.Sprintf("pgbench.c%d.p99_ms", p.Clients)] = Figure{ID: fmt.Sprintf("pgbench.c%d.p99_ms", p.Clients),
			Name: fmt.Sprintf("pgbench p99, %d client(s)", p.Clients), Value: benchkit.Ms(p.Latency.P99), Unit: "ms"}
		pgCurve.Points = append(pgCurve.Points, pointOf(fmt.Sprintf("%d", p.Clients), p.TPS, p.Latency))
	}
	if p, ok := pg[8]; ok {
		base(Figure{ID: "pgbench.c8.cpu_ms_per_tx", Name: "pgbench 1-INSERT tx, processor time", Value: p.CPUMsPerTx, Unit: "ms/tx",
			Detail: "PostgreSQL's processes and pgbench, 8 clients"})
	}
	// PostgreSQL's own events/s on the event store's table, one row or a batch per
	// transaction, and what a batch gains over single rows at the same client count, to read
	// the appends' batch target against on these servers.
	pgRows := map[[2]int]float64{} // events/s by rows per transaction and clients
	for _, p := range raw.PGBenchEvents {
		pgRows[[2]int{p.Rows, p.Clients}] = p.RowsPerSec
	}
	pgBatchRatio := func(rows, clients int) (float64, bool) {
		one, many := pgRows[[2]int{1, clients}], pgRows[[2]int{rows, clients}]
		if rows <= 1 || one <= 0 || many <= 0 {
			return 0, false
		}
		return many / one, true
	}
	for _, p := range raw.PGBenchEvents {
		kind, name := "single", "1-row event INSERT tx"
		if p.Rows > 1 {
			kind, name = fmt.Sprintf("batch%d", p.Rows), fmt.Sprintf("%d-row event INSERT tx", p.Rows)
		}
		detail := fmt.Sprintf("%s tx/s, p50 %.2f ms, p99 %.2f ms per tx", num(p.TPS), benchkit.Ms(p.Latency.P50), benchkit.Ms(p.Latency.P99))
		if ratio, ok := pgBatchRatio(p.Rows, p.Clients); ok {
			detail += fmt.Sprintf("; %.1f× the events/s of 1-row tx", ratio)
		}
		base(Figure{ID: fmt.Sprintf("pgbench.events.%s.c%d.events_per_sec", kind, p.Clients),
			Name: fmt.Sprintf("pgbench %s, %d client(s)", name, p.Clients), Value: p.RowsPerSec, Unit: "events/s", Detail: detail})
	}
	pp := raw.Producer
	base(Figure{ID: "kafka.producer.records_per_sec", Name: "ProducerPerformance", Value: pp.RecordsPerSec, Unit: "records/s",
		Detail: fmt.Sprintf("%d records of %d bytes, acks=all, %.1f MB/s, p50 %.0f ms, p99 %.0f ms", pp.Records, pp.RecordBytes, pp.MBPerSec, pp.P50Ms, pp.P99Ms)})
	cp := raw.Consumer
	base(Figure{ID: "kafka.consumer.records_per_sec", Name: "ConsumerPerformance", Value: cp.FetchRecordsPerSec, Unit: "records/s",
		Detail: fmt.Sprintf("fetching, after the group join; %.0f records/s with it", cp.RecordsPerSec)})
	kl := raw.KafkaLatency
	base(Figure{ID: "kafka.e2e.p50_ms", Name: "EndToEndLatency p50", Value: kl.P50Ms, Unit: "ms",
		Detail: fmt.Sprintf("%d messages, one at a time, acks=all, whole ms; avg %.1f ms", kl.Messages, kl.AvgMs)})
	base(Figure{ID: "kafka.e2e.p99_ms", Name: "EndToEndLatency p99", Value: kl.P99Ms, Unit: "ms"})
	base(Figure{ID: "smtp.emails_per_sec", Name: "plain SMTP to the mail server", Value: raw.SMTP.EmailsPerSec, Unit: "emails/s",
		Detail: fmt.Sprintf("%d messages of %d bytes, %d sessions", raw.SMTP.Emails, raw.SMTP.MessageBytes, raw.SMTP.Conns)})

	closed := Curve{Name: "commands, closed loop", Unit: "commands/s"}
	peak, peakClients := 0.0, 0
	for _, c := range raw.Commands {
		res := c.Result
		errs := 0
		for _, n := range res.Errors {
			errs += n
		}
		pgID := fmt.Sprintf("pgbench.c%d", c.Clients)
		var aim func(*Figure)
		if c.Clients == 8 {
			aim = func(f *Figure) {
				f.aim("ratio", ">=", 0.25, "commands over HTTP at 8 clients ≥ 0.25× pgbench's one-INSERT tx/s")
			}
		}
		set(Figure{ID: fmt.Sprintf("commands.c%d.commands_per_sec", c.Clients), Name: fmt.Sprintf("HTTP commands, %d client(s)", c.Clients),
			Value: res.Throughput, Unit: "commands/s", Detail: fmt.Sprintf("%d commands, %d errors, %.0f events/s", res.Commands, errs, c.EventsPerSec)},
			pgID+".tps", aim)
		set(Figure{ID: fmt.Sprintf("commands.c%d.p50_ms", c.Clients), Name: fmt.Sprintf("HTTP command p50, %d client(s)", c.Clients),
			Value: benchkit.Ms(res.P50), Unit: "ms"}, pgID+".p50_ms", nil)
		set(Figure{ID: fmt.Sprintf("commands.c%d.p99_ms", c.Clients), Name: fmt.Sprintf("HTTP command p99, %d client(s)", c.Clients),
			Value: benchkit.Ms(res.P99), Unit: "ms"}, pgID+".p99_ms", nil)
		closed.Points = append(closed.Points, Point{Label: fmt.Sprintf("%d", c.Clients), Throughput: res.Throughput,
			P50: benchkit.Ms(res.P50), P90: benchkit.Ms(res.P90), P99: benchkit.Ms(res.P99)})
		if c.EventsPerSec > peak {
			peak, peakClients = c.EventsPerSec, c.Clients
		}
	}
	set(Figure{ID: "writer.peak_events_per_sec", Name: "writer's peak, events over HTTP", Value: peak, Unit: "events/s",
		Detail: fmt.Sprintf("at %d clients", peakClients)}, fmt.Sprintf("pgbench.c%d.tps", peakClients), nil)

	single := map[int]string{}
	for _, a := range raw.Appends {
		t := a.Result
		detail := fmt.Sprintf("p50 %.2f ms, p99 %.2f ms per append", benchkit.Ms(t.Latency.P50), benchkit.Ms(t.Latency.P99))
		if a.Batch == 1 {
			id := fmt.Sprintf("appends.single.c%d.events_per_sec", a.Concurrency)
			single[a.Concurrency] = id
			set(Figure{ID: id, Name: fmt.Sprintf("library appends of 1 event, %d appender(s)", a.Concurrency), Value: t.EventsPerSec,
				Unit: "events/s", Detail: detail}, fmt.Sprintf("pgbench.c%d.tps", a.Concurrency), func(f *Figure) {
				f.aim("ratio", ">=", 0.6, fmt.Sprintf("single appends ≥ 60%% of pgbench's one-INSERT tx/s, %d appender(s)", a.Concurrency))
			})
			continue
		}
		if ratio, ok := pgBatchRatio(a.Batch, a.Concurrency); ok {
			detail += fmt.Sprintf("; PostgreSQL's own %d-row/1-row ratio here: %.1f×", a.Batch, ratio)
		}
		set(Figure{ID: fmt.Sprintf("appends.batch%d.c%d.events_per_sec", a.Batch, a.Concurrency),
			Name: fmt.Sprintf("library appends of %d events, %d appender(s)", a.Batch, a.Concurrency), Value: t.EventsPerSec,
			Unit: "events/s", Detail: detail}, single[a.Concurrency], func(f *Figure) {
			f.aim("ratio", ">=", 20, fmt.Sprintf("%d-event batches ≥ 20× the events/s of single appends, %d appender(s)", a.Batch, a.Concurrency))
		})
	}

	rl := raw.Relay
	relay := Figure{ID: "relay.events_per_sec", Name: "relay drain", Value: rl.EventsPerSec, Unit: "events/s",
		Detail: fmt.Sprintf("%d events in %.1f s, started cold, acks=all", rl.Events, rl.Elapsed.Seconds())}
	set(relay, "kafka.producer.records_per_sec", func(f *Figure) {
		f.aim("ratio", ">=", 0.5, "relay ≥ 50% of ProducerPerformance's records/s")
	})
	relay.ID, relay.Name = "relay.events_per_sec_vs_writer", "relay drain, against the writer"
	set(relay, "writer.peak_events_per_sec", func(f *Figure) {
		f.aim("ratio", ">=", 2, "relay ≥ 2× the writer's peak events/s")
	})
	drainDetail := func(d benchkit.Drain) string {
		return fmt.Sprintf("%d events, records of %.0f bytes; %.0f events/s with the group join", d.Events, d.RecordBytes, d.WithJoinPerSec)
	}
	set(Figure{ID: "consumer.noop.events_per_sec", Name: "consumer runtime, no-op handler", Value: raw.NoOp.EventsPerSec, Unit: "events/s",
		Detail: drainDetail(raw.NoOp)}, "kafka.consumer.records_per_sec", func(f *Figure) {
		f.aim("ratio", ">=", 0.5, "no-op consumer ≥ 50% of ConsumerPerformance's records/s")
	})
	set(Figure{ID: "projector.events_per_sec", Name: "projector drain", Value: raw.Projector.EventsPerSec, Unit: "events/s",
		Detail: drainDetail(raw.Projector)}, "kafka.consumer.records_per_sec", nil)
	set(Figure{ID: "auditor.events_per_sec", Name: "auditor drain", Value: raw.Auditor.EventsPerSec, Unit: "events/s",
		Detail: drainDetail(raw.Auditor)}, "kafka.consumer.records_per_sec", nil)
	set(Figure{ID: "notifier.emails_per_sec", Name: "notifier drain", Value: raw.Notifier.EmailsPerSec, Unit: "emails/s",
		Detail: fmt.Sprintf("%d emails of %d events, rate limit off; %.0f events/s", raw.Notifier.Emails, raw.Notifier.Events, raw.Notifier.EventsPerSec)},
		"smtp.emails_per_sec", nil)

	open := Curve{Name: "commands, open loop (from scheduled start)", Unit: "commands/s"}
	e2e := Curve{Name: "end to end, command to projection", Unit: "commands/s"}
	for i, e := range raw.EndToEnd {
		pct := int(math.Round(100 * r.set.EndToEndFractions[i]))
		detail := fmt.Sprintf("%.0f commands/s asked, %.0f done, %d reads of every %d", e.Rate, e.Commands.Throughput, e.Latency.Count, e.ReadEvery)
		if e.ReadErrors > 0 {
			detail += fmt.Sprintf(", %d failed", e.ReadErrors)
		}
		var p50, p99 func(*Figure)
		if pct == 25 {
			p99 = func(f *Figure) {
				f.aim("value", "<=", 50, "end-to-end p99 ≤ 50 ms at 25% of the maximum command rate")
			}
		}
		if pct == 50 {
			p50 = func(f *Figure) {
				f.aim("value", "<=", 15, "end-to-end p50 ≤ 15 ms at 50% of the maximum command rate")
			}
			p99 = func(f *Figure) {
				f.aim("value", "<=", 100, "end-to-end p99 ≤ 100 ms at 50% of the maximum command rate")
			}
		}
		set(Figure{ID: fmt.Sprintf("e2e.%d.p50_ms", pct), Name: fmt.Sprintf("end to end p50 at %d%% of max", pct), Value: benchkit.Ms(e.Latency.P50),
			Unit: "ms", Detail: detail}, "kafka.e2e.p50_ms", p50)
		set(Figure{ID: fmt.Sprintf("e2e.%d.p99_ms", pct), Name: fmt.Sprintf("end to end p99 at %d%% of max", pct), Value: benchkit.Ms(e.Latency.P99),
			Unit: "ms"}, "kafka.e2e.p99_ms", p99)
		label := fmt.Sprintf("%d%%", pct)
		open.Points = append(open.Points, Point{Label: label, Throughput: e.Commands.Throughput,
			P50: benchkit.Ms(e.Commands.P50), P90: benchkit.Ms(e.Commands.P90), P99: benchkit.Ms(e.Commands.P99)})
		e2e.Points = append(e2e.Points, pointOf(label, e.Commands.Throughput, e.Latency))
	}
	for _, st := range raw.Stores {
		for _, b := range st.Baseline {
			base(Figure{ID: fmt.Sprintf("%s.baseline.c%d.ops_per_sec", st.Store, b.Clients), Name: fmt.Sprintf("%s, %d client(s)", st.BaselineTool, b.Clients),
				Value: b.OpsPerSec, Unit: "ops/s", Detail: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", benchkit.Ms(b.Latency.P50), benchkit.Ms(b.Latency.P99))})
		}
	}
	for _, st := range raw.Stores {
		for _, a := range st.Appends {
			t := a.Result
			set(Figure{ID: fmt.Sprintf("stores.%s.appends.c%d.events_per_sec", st.Store, a.Concurrency),
				Name: fmt.Sprintf("%s store: appends of 1 event, %d appender(s)", st.Store, a.Concurrency), Value: t.EventsPerSec, Unit: "events/s",
				Detail: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms per append", benchkit.Ms(t.Latency.P50), benchkit.Ms(t.Latency.P99))},
				fmt.Sprintf("%s.baseline.c%d.ops_per_sec", st.Store, a.Concurrency), nil)
		}
		rl := st.Relay
		set(Figure{ID: fmt.Sprintf("stores.%s.relay.events_per_sec", st.Store), Name: fmt.Sprintf("%s store: relay drain", st.Store),
			Value: rl.EventsPerSec, Unit: "events/s", Detail: fmt.Sprintf("%d events in %.1f s, started cold, acks=all", rl.Events, rl.Elapsed.Seconds())},
			"kafka.producer.records_per_sec", nil)
	}
	if e := raw.EndToEndFixed; e.Rate > 0 {
		detail := fmt.Sprintf("%.0f commands/s done, %d reads of every %d", e.Commands.Throughput, e.Latency.Count, e.ReadEvery)
		set(Figure{ID: "e2e.fixed.p50_ms", Name: fmt.Sprintf("end to end p50 at %.0f commands/s", e.Rate), Value: benchkit.Ms(e.Latency.P50),
			Unit: "ms", Detail: detail}, "kafka.e2e.p50_ms", func(f *Figure) {
			f.aim("value", "<=", 10, fmt.Sprintf("end-to-end p50 ≤ 10 ms at %.0f commands/s", e.Rate))
		})
		set(Figure{ID: "e2e.fixed.p99_ms", Name: fmt.Sprintf("end to end p99 at %.0f commands/s", e.Rate), Value: benchkit.Ms(e.Latency.P99),
			Unit: "ms"}, "kafka.e2e.p99_ms", func(f *Figure) {
			f.aim("value", "<=", 25, fmt.Sprintf("end-to-end p99 ≤ 25 ms at %.0f commands/s", e.Rate))
		})
	}
	if c := raw.Cost; c.Commands.Commands > 0 {
		detail := c.breakdown()
		if c.Brokers != 1 {
			detail += fmt.Sprintf("; %d brokers ran on the machine, all counted", c.Brokers)
		}
		set(Figure{ID: "cost.cpu_ms_per_command", Name: fmt.Sprintf("processor time per command at %.0f/s, every program", c.Rate),
			Value: c.MsPerCommand, Unit: "ms", Detail: detail}, "pgbench.c8.cpu_ms_per_tx", func(f *Figure) {
			f.aim("value", "<=", 5, fmt.Sprintf("processor time per command ≤ 5 ms at %.0f commands/s, over every program of the pipeline", c.Rate))
		})
	}
	curves = []Curve{pgCurve, closed, open, e2e}
	return baselines, figures, curves
}

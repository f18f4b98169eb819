package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// The baselines are the physical limits of the servers Annals runs on, measured by their own
// tools on the same servers in the same run: pgbench for PostgreSQL, Kafka's
// ProducerPerformance, ConsumerPerformance and EndToEndLatency for the broker, and plain SMTP
// sessions for the mail server.

// PGBench is pgbench's figures for one client count.
type PGBench struct {
	Clients int              `json:"clients"`
	TPS     float64          `json:"tps"`
	Latency benchkit.Latency `json:"latency"`
	// CPUMsPerTx is the processor time of PostgreSQL's processes and pgbench's per
	// transaction, from /proc: the physical cost of one durable INSERT on this machine.
	CPUMsPerTx float64 `json:"cpu_ms_per_tx"`
}

// PGBenchInsert runs pgbench with a script of one INSERT of an event-sized row per
// transaction, into a table with a primary key in a schema of its own, for d with clients
// connections, and reads the latency of every transaction from pgbench's log. url is a libpq
// connection string; dir a folder for the script and the logs. The table and schema are the
// caller's (PGBenchSchema).
func PGBenchInsert(ctx context.Context, pgbench, url, schema, dir string, clients int, d time.Duration) (PGBench, error) {
	sql := fmt.Sprintf("insert into %s.one_insert (stream_id, data) values ('order-' || :client_id, '%s');\n",
		pgx.Identifier{schema}.Sanitize(), benchkit.AppendPayload)
	return runPGBench(ctx, pgbench, url, dir, "insert.sql", sql, fmt.Sprintf("pgbench_c%d", clients), clients, d)
}

// runPGBench writes sql to the script file script in dir and runs it with pgbench for d with
// clients connections, logging every transaction to files named logPrefix.* in dir, whose
// latencies it reads back.
func runPGBench(ctx context.Context, pgbench, url, dir, script, sql, logPrefix string, clients int, d time.Duration) (PGBench, error) {
	path := filepath.Join(dir, script)
	if err := os.WriteFile(path, []byte(sql), 0o644); err != nil {
		return PGBench{}, err
	}
	old, _ := filepath.Glob(filepath.Join(dir, logPrefix+".*"))
	for _, f := range old {
		os.Remove(f)
	}
	threads := 1
	if clients > 1 {
		threads = 2
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", "prepared", "-f", path, "-c", strconv.Itoa(clients),
		"-j", strconv.Itoa(threads), "-T", strconv.Itoa(secs), "-l", "--log-prefix="+logPrefix, url)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return PGBench{}, fmt.Errorf("pgbench -f %s -c %d: %v\n%s", script, clients, err, out)
	}
	m := regexp.MustCompile(`(?m)^tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return PGBench{}, fmt.Errorf("pgbench -f %s -c %d printed no tps:\n%s", script, clients, out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	// The per-transaction log: client_id transaction_no time_us script_no time_epoch time_us.
	logs, _ := filepath.Glob(filepath.Join(dir, logPrefix+".*"))
	var ds []time.Duration
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			return PGBench{}, err
		}
		for line := range strings.Lines(string(b)) {
			fs := strings.Fields(line)
			if len(fs) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fs[2], 10, 64)
			if err == nil {
				ds = append(ds, time.Duration(us)*time.Microsecond)
			}
		}
	}
	return PGBench{Clients: clients, TPS: tps, Latency: benchkit.Summarise(ds)}, nil
}

// PGBenchSchema creates a schema with pgbench's table: an identity primary key, the stream
// id, the data as jsonb and the recording time, as the event store's rows have.
func PGBenchSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	id := pgx.Identifier{schema}.Sanitize()
	_, err := pool.Exec(ctx, `create schema `+id+`;
		create table `+id+`.one_insert (
			id bigint generated always as identity primary key,
			stream_id text not null,
			data jsonb not null,
			recorded_at timestamptz not null default clock_timestamp()
		)`)
	return err
}

// PGBenchEvents is pgbench's figures for a script of Rows event rows per transaction:
// RowsPerSec is its transactions/s times Rows, the events/s PostgreSQL itself writes.
type PGBenchEvents struct {
	Rows int `json:"rows_per_tx"`
	PGBench
	RowsPerSec float64 `json:"rows_per_sec"`
}

// pgbenchEventIDs is the sequence of the ids of PGBenchEventRows' rows.
const pgbenchEventIDs = "pgbench_event_ids"

// PGBenchEventsSchema applies the event store's migrations to schema, which exists, through
// pool, whose search_path is schema, and creates there the sequence of PGBenchEventRows' event
// ids. The rows then go to the event store's own annals_events: its columns, identity,
// defaults, check constraint, and unique and BRIN indexes.
func PGBenchEventsSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		return fmt.Errorf("bench: the event store's tables in %s: %w", schema, err)
	}
	_, err := pool.Exec(ctx, "create sequence "+pgx.Identifier{schema, pgbenchEventIDs}.Sanitize())
	return err
}

// PGBenchEventRows runs pgbench with a script of one INSERT of rows event rows per
// transaction into the annals_events of schema (PGBenchEventsSchema), for d with clients
// connections, as PGBenchInsert does: one row, or versions 0 to rows-1 of a new stream, each
// row the append workload's event (AppendPayload, an ItemAdded of an order). Each transaction
// writes a stream of its own, named by the client and a random number.
func PGBenchEventRows(ctx context.Context, pgbench, url, schema, dir string, rows, clients int, d time.Duration) (PGBenchEvents, error) {
	if rows < 1 {
		return PGBenchEvents{}, fmt.Errorf("bench: %d event rows per transaction", rows)
	}
	table := pgx.Identifier{schema, "annals_events"}.Sanitize()
	seq := strings.ReplaceAll(pgx.Identifier{schema, pgbenchEventIDs}.Sanitize(), "'", "''")
	// The event store's ids are UUIDv7, which rise with time, so that each insert into the
	// unique index on event_id lands on its rightmost page. The sequence's numbers, as uuids,
	// rise too; random (v4) uuids would land all over the index, make every row dearer, and
	// understate what a batch saves.
	id := fmt.Sprintf("lpad(to_hex(nextval('%s')), 32, '0')::uuid", seq)
	stream := "'order-' || :client_id || '-' || :stream"
	sql := `\set stream random(1, 9223372036854775806)` + "\n"
	cols := "(event_id, stream_id, category, version, type, data, metadata, correlation_id, causation_id)"
	if rows == 1 {
		sql += fmt.Sprintf("insert into %s %s values (%s, %s, 'order', 0, 'ItemAdded', '%s', '{}', 'bench', 'bench');\n",
			table, cols, id, stream, benchkit.AppendPayload)
	} else {
		sql += fmt.Sprintf("insert into %s %s select %s, %s, 'order', v, 'ItemAdded', '%s'::json, '{}'::json, 'bench', 'bench' from generate_series(0, %d) as v;\n",
			table, cols, id, stream, benchkit.AppendPayload, rows-1)
	}
	name := fmt.Sprintf("events%d", rows)
	p, err := runPGBench(ctx, pgbench, url, dir, name+".sql", sql, fmt.Sprintf("pgbench_%s_c%d", name, clients), clients, d)
	if err != nil {
		return PGBenchEvents{}, err
	}
	return PGBenchEvents{Rows: rows, PGBench: p, RowsPerSec: p.TPS * float64(rows)}, nil
}

// Kafka runs Kafka's own tools from the broker's jars.
type Kafka struct {
	Java    string // "java" when empty
	Libs    string // the folder of the jars (KAFKA_LIBS)
	Brokers []string
}

func (k Kafka) tool(ctx context.Context, class string, args ...string) (string, error) {
	java := k.Java
	if java == "" {
		java = "java"
	}
	cmd := exec.CommandContext(ctx, java, append([]string{"-Xms128m", "-Xmx512m", "-cp", filepath.Join(k.Libs, "*"),
		"org.apache.kafka.tools." + class}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", class, err, out)
	}
	return string(out), nil
}

// Producer is ProducerPerformance's summary.
type Producer struct {
	Records       int     `json:"records"`
	RecordBytes   int     `json:"record_bytes"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
}

// ProducerPerformance sends records records of size bytes to topic as fast as it can, with
// acks=all.
func (k Kafka) ProducerPerformance(ctx context.Context, topic string, records, size int) (Producer, error) {
	out, err := k.tool(ctx, "ProducerPerformance", "--topic", topic, "--num-records", strconv.Itoa(records),
		"--record-size", strconv.Itoa(size), "--throughput", "-1",
		"--producer-props", "bootstrap.servers="+strings.Join(k.Brokers, ","), "acks=all")
	if err != nil {
		return Producer{}, err
	}
	// The last line: N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max
	// latency, P ms 50th, P ms 95th, P ms 99th, P ms 99.9th.
	var last string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "records sent") {
			last = line
		}
	}
	p := Producer{Records: records, RecordBytes: size}
	for _, f := range []struct {
		re  string
		dst *float64
	}{
		{`([0-9.]+) records/sec`, &p.RecordsPerSec}, {`([0-9.]+) MB/sec`, &p.MBPerSec},
		{`([0-9.]+) ms 50th`, &p.P50Ms}, {`([0-9.]+) ms 99th`, &p.P99Ms},
	} {
		m := regexp.MustCompile(f.re).FindStringSubmatch(last)
		if m == nil {
			return Producer{}, fmt.Errorf("ProducerPerformance: no %q in its summary:\n%s", f.re, out)
		}
		*f.dst, _ = strconv.ParseFloat(m[1], 64)
	}
	return p, nil
}

// Consumer is ConsumerPerformance's report: the whole run (joining the group included) and
// the fetching alone, after the group's rebalance.
type Consumer struct {
	Records            int     `json:"records"`
	RecordsPerSec      float64 `json:"records_per_sec"`
	MBPerSec           float64 `json:"mb_per_sec"`
	FetchRecordsPerSec float64 `json:"fetch_records_per_sec"`
	FetchMBPerSec      float64 `json:"fetch_mb_per_sec"`
}

// ConsumerPerformance reads records records of topic from its start with a fresh group.
func (k Kafka) ConsumerPerformance(ctx context.Context, topic, group string, records int) (Consumer, error) {
	out, err := k.tool(ctx, "ConsumerPerformance", "--bootstrap-server", strings.Join(k.Brokers, ","), "--topic", topic,
		"--messages", strconv.Itoa(records), "--group", group, "--timeout", "60000")
	if err != nil {
		return Consumer{}, err
	}
	// A header line, then a line of values.
	var header, values []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ",")
		for i := range fs {
			fs[i] = strings.TrimSpace(fs[i])
		}
		if header != nil {
			values = fs
			break
		}
		if fs[0] == "start.time" {
			header = fs
		}
	}
	field := func(name string) (float64, error) {
		i := slices.Index(header, name)
		if i < 0 || i >= len(values) {
			return 0, fmt.Errorf("ConsumerPerformance: no %s in its report:\n%s", name, out)
		}
		return strconv.ParseFloat(values[i], 64)
	}
	c := Consumer{}
	consumed, err := field("data.consumed.in.nMsg")
	if err != nil {
		return c, err
	}
	if c.Records = int(consumed); c.Records < records {
		return c, fmt.Errorf("ConsumerPerformance read %d of %d records before its timeout", c.Records, records)
	}
	for name, dst := range map[string]*float64{"nMsg.sec": &c.RecordsPerSec, "MB.sec": &c.MBPerSec,
		"fetch.nMsg.sec": &c.FetchRecordsPerSec, "fetch.MB.sec": &c.FetchMBPerSec} {
		if *dst, err = field(name); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Latencies is EndToEndLatency's report, in whole milliseconds as it prints them.
type Latencies struct {
	Messages int     `json:"messages"`
	AvgMs    float64 `json:"avg_ms"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p99_9_ms"`
}

// EndToEndLatency sends messages records of size bytes to topic one at a time (acks=all)
// and times each from its send to its receipt by a consumer of the same topic.
func (k Kafka) EndToEndLatency(ctx context.Context, topic string, messages, size int) (Latencies, error) {
	out, err := k.tool(ctx, "EndToEndLatency", strings.Join(k.Brokers, ","), topic, strconv.Itoa(messages), "all", strconv.Itoa(size))
	if err != nil {
		return Latencies{}, err
	}
	l := Latencies{Messages: messages}
	avg := regexp.MustCompile(`Avg latency: ([0-9.]+) ms`).FindStringSubmatch(out)
	pct := regexp.MustCompile(`Percentiles: 50th = ([0-9.]+), 99th = ([0-9.]+), 99.9th = ([0-9.]+)`).FindStringSubmatch(out)
	if avg == nil || pct == nil {
		return l, fmt.Errorf("EndToEndLatency printed no latencies:\n%s", out)
	}
	l.AvgMs, _ = strconv.ParseFloat(avg[1], 64)
	l.P50Ms, _ = strconv.ParseFloat(pct[1], 64)
	l.P99Ms, _ = strconv.ParseFloat(pct[2], 64)
	l.P999Ms, _ = strconv.ParseFloat(pct[3], 64)
	return l, nil
}

// SMTP is the plain SMTP baseline's figures.
type SMTP struct {
	Emails       int     `json:"emails"`
	Conns        int     `json:"conns"`
	MessageBytes int     `json:"message_bytes"`
	EmailsPerSec float64 `json:"emails_per_sec"`
}

// SMTPSend sends emails messages to the server at addr over conns sessions at once, each
// session sending its share one after the other (MAIL, RCPT, DATA), as the notifier's
// connections do, with net/smtp and no TLS. The messages are the notifier's built-in
// templates rendered for their sample data, in MIME as the notifier sends them, addressed to
// the domain domain.
func SMTPSend(ctx context.Context, addr, domain string, emails, conns int) (SMTP, error) {
	msgs, err := sampleEmails(domain)
	if err != nil {
		return SMTP{}, err
	}
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	next := make(chan int, emails)
	for i := range emails {
		next <- i
	}
	close(next)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Hello("bench.annals.local"); err != nil {
				errs <- err
				return
			}
			for i := range next {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				if err := sendOne(c, domain, i, msgs[i%len(msgs)]); err != nil {
					errs <- fmt.Errorf("email %d: %w", i, err)
					return
				}
			}
			_ = c.Quit()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return SMTP{}, fmt.Errorf("bench: SMTP baseline: %w", err)
	}
	return SMTP{Emails: emails, Conns: conns, MessageBytes: size / len(msgs), EmailsPerSec: float64(emails) / elapsed.Seconds()}, nil
}

func sendOne(c *smtp.Client, domain string, i int, msg []byte) error {
	if err := c.Mail("noreply@annals.local"); err != nil {
		return err
	}
	if err := c.Rcpt(fmt.Sprintf("smtp-%d@%s", i, domain)); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// sampleEmails renders each kind of email for the templates' sample data as a
// multipart/alternative message with a text and an HTML part, quoted-printable, with the
// header fields the notifier writes.
func sampleEmails(domain string) ([][]byte, error) {
	tpl, err := templates.Load("")
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i, k := range templates.Kinds() {
		r, err := tpl.Render(k, templates.Sample())
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		boundary := fmt.Sprintf("annals-bench-%d", i)
		fmt.Fprintf(&b, "Date: %s\r\nFrom: \"Annals\" <noreply@annals.local>\r\nTo: \"Ada Lovelace\" <ada@%s>\r\n", time.Now().Format(time.RFC1123Z), domain)
		fmt.Fprintf(&b, "Subject: %s\r\nMessage-ID: <%s@annals.local>\r\nMIME-Version: 1.0\r\n", r.Subject, templates.Sample().EventID)
		fmt.Fprintf(&b, "User-Agent: annals-notifier\r\nX-Mailer: annals-notifier\r\nX-Annals-Event-ID: %s\r\n", templates.Sample().EventID)
		fmt.Fprintf(&b, "Content-Type: multipart/alternative;\r\n boundary=%s\r\n\r\n", boundary)
		for _, part := range []struct{ typ, body string }{{"text/plain", r.Text}, {"text/html", r.HTML}} {
			fmt.Fprintf(&b, "--%s\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: %s; charset=UTF-8\r\n\r\n", boundary, part.typ)
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(part.body, "\r\n", "\n"), "\n", "\r\n"))
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
		out = append(out, []byte(b.String()))
	}
	return out, nil
}

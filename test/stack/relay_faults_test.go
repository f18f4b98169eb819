//go:build stack

package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
)

// The relay's fault tests: the relay is killed, or its broker goes away, while events are
// appended; afterwards every event must be in Kafka, and each stream's events in order
// (first-seen versions 0, 1, 2, ... with none missing). Duplicates are allowed after a crash
// and are counted; loss never is.
//
// They run against the default stack (DATABASE_URL, KAFKA_BROKERS), each round in a fresh
// schema with topics of its own. TestRelay_BrokerRestart stops and starts that stack's broker
// with scripts/stack.sh. ANNALS_FAULT_ROUNDS sets how often each scenario repeats (default 1;
// make test-faults runs 5).

// faultRounds is ANNALS_FAULT_ROUNDS, 1 when unset.
func faultRounds(t *testing.T) int {
	t.Helper()
	s := os.Getenv("ANNALS_FAULT_ROUNDS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("ANNALS_FAULT_ROUNDS=%q: want a whole number of at least 1", s)
	}
	return n
}

// faultEnv is one round's deployment: a fresh schema, a unique topic prefix with its topics
// created, and the configuration a relay of that deployment runs with.
type faultEnv struct {
	pool    *pgxpool.Pool
	brokers []string
	cfg     *config.Config
	vars    map[string]string // cfg as environment variables, for `annals relay`
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	e := newFaultEnvWithoutTopics(t)
	if err := relay.EnsureTopics(context.Background(), e.brokers, wiring.Topics(e.cfg), io.Discard); err != nil {
		t.Fatal(err)
	}
	return e
}

// newFaultEnvWithoutTopics is newFaultEnv without creating the topics (a writer creates them
// when it starts); they are deleted when the test ends all the same.
func newFaultEnvWithoutTopics(t *testing.T) *faultEnv {
	t.Helper()
	return newFaultEnvOn(t, testenv.KafkaBrokers(t))
}

// newFaultEnvOn is newFaultEnvWithoutTopics on the given brokers (a broker of the test's
// own).
func newFaultEnvOn(t *testing.T, brokers []string) *faultEnv {
	t.Helper()
	ctx := context.Background()
	pool, schemaName := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	// pgx passes URL parameters it does not know to the server as run-time parameters: a
	// relay in another process gets the same schema this way.
	dbURL := testenv.SchemaURL(t, schemaName)
	vars := map[string]string{
		"DATABASE_URL":           dbURL,
		"KAFKA_BROKERS":          strings.Join(brokers, ","),
		"KAFKA_TOPIC_PREFIX":     "fault-" + testenv.UniqueName(t),
		"KAFKA_TOPIC_PARTITIONS": "6",
		"EVENT_SERIALIZATION":    "avro",
		"EVENT_SIGNING_KEY":      testenv.SigningKey,
		"HTTP_ADDR":              "",
		"ANNALS_CONFIG":          "",
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	topics := wiring.Topics(cfg)
	t.Cleanup(func() {
		names := make([]string, len(topics))
		for i, tp := range topics {
			names[i] = tp.Name
		}
		client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
		if _, err := client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			t.Logf("delete topics: %v", err)
		}
	})
	return &faultEnv{pool: pool, brokers: brokers, cfg: cfg, vars: vars}
}

// eventTopics are the topics the relay publishes events to.
func (e *faultEnv) eventTopics() []string {
	var out []string
	for _, c := range wiring.Categories {
		out = append(out, e.cfg.TopicName(c))
	}
	return out
}

// load describes the appends of a round: events spread over streams, appended by several
// writers at a steady total rate, in appends of 1 to 5 events.
type load struct {
	streams, events, writers int
	perSecond                float64
}

// appended is what a load has appended so far: events per stream, committed.
type appended struct {
	mu     sync.Mutex
	n      int
	stream map[string]int64
	done   chan struct{}
}

func (a *appended) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// snapshot returns the events appended per stream; call it after done is closed.
func (a *appended) snapshot() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.stream))
	for s, n := range a.stream {
		out[s] = n
	}
	return out
}

// itemEvent is the i-th event of a stream: mostly ItemAdded, every fourth an ItemRemoved of
// the item added before it, each with data its Avro schema accepts.
func itemEvent(i int) events.Event {
	if i%4 == 3 {
		return events.Event{Type: "ItemRemoved", Data: fmt.Appendf(nil, `{"item_id":"sku-%d"}`, i-1)}
	}
	return events.Event{Type: "ItemAdded", Data: fmt.Appendf(nil,
		`{"item":{"id":"sku-%d","name":"Stoneware mug, %d ml","price_cents":%d,"quantity":%d}}`, i, 200+10*(i%30), 799+i%500, 1+i%3)}
}

// start appends the load in the background, paced to its rate, until every event is
// appended or the test ends. A failed append fails the test.
func (l load) start(t *testing.T, store events.Appender) *appended {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &appended{stream: map[string]int64{}, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-a.done })
	run := fmt.Sprint(time.Now().UnixNano())
	perWriter := l.events / l.writers
	var wg sync.WaitGroup
	for w := range l.writers {
		wg.Go(func() {
			var streams []string
			for s := w; s < l.streams; s += l.writers {
				streams = append(streams, fmt.Sprintf("order-%s-%d", run, s))
			}
			next := make([]int, len(streams)) // the next event number of each stream
			start := time.Now()
			rate := l.perSecond / float64(l.writers)
			for done, k := 0, 0; done < perWriter && ctx.Err() == nil; k++ {
				si := k % len(streams)
				n := min(1+k%5, perWriter-done)
				evs := make([]events.Event, n)
				for j := range evs {
					evs[j] = itemEvent(next[si] + j)
				}
				if _, err := store.Append(ctx, streams[si], events.Any(), evs, events.AppendOptions{CorrelationID: run, CausationID: "fault-test"}); err != nil {
					if ctx.Err() == nil {
						t.Errorf("append to %s: %v", streams[si], err)
					}
					return
				}
				next[si] += n
				done += n
				a.mu.Lock()
				a.n += n
				a.stream[streams[si]] += int64(n)
				a.mu.Unlock()
				// Pacing: the load's rate, not a wait for anything.
				if ahead := time.Until(start.Add(time.Duration(float64(done) / rate * float64(time.Second)))); ahead > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(ahead):
					}
				}
			}
		})
	}
	go func() { wg.Wait(); close(a.done) }()
	return a
}

// consumed is one record as a consumer received it.
type consumed struct {
	stream    string
	version   int64
	partition int
	offset    int64
	topic     string
	at        time.Time
}

// collector reads the event topics in a consumer group of its own, from the first offset,
// in the background, and keeps every record in the order received.
type collector struct {
	mu     sync.Mutex
	recs   []consumed
	seen   map[string]bool // stream@version
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func collect(t *testing.T, brokers, topics []string) *collector {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: "test-" + testenv.UniqueName(t), GroupTopics: topics,
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{seen: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer r.Close()
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.mu.Lock()
					c.err = err
					c.mu.Unlock()
				}
				return
			}
			rec := consumed{stream: string(m.Key), version: -1, partition: m.Partition, offset: m.Offset, topic: m.Topic, at: time.Now()}
			for _, h := range m.Headers {
				if h.Key == "stream-version" {
					rec.version, _ = strconv.ParseInt(string(h.Value), 10, 64)
				}
			}
			c.mu.Lock()
			c.recs = append(c.recs, rec)
			c.seen[fmt.Sprintf("%s@%d", rec.stream, rec.version)] = true
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// unique is the number of distinct events received so far.
func (c *collector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *collector) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *collector) stop() {
	c.cancel()
	<-c.done
}

// records stops the collector and returns what it received.
func (c *collector) records() []consumed {
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recs
}

// waitAll waits until every event of want has arrived; on the deadline it fails the test,
// naming what is missing.
func (c *collector) waitAll(t *testing.T, want map[string]int64, within time.Duration) {
	t.Helper()
	total := 0
	for _, n := range want {
		total += int(n)
	}
	deadline := time.Now().Add(within)
	for c.unique() < total {
		if err := c.failure(); err != nil {
			t.Fatalf("consumer: %v", err)
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			var missing []string
			for s, n := range want {
				for v := range n {
					if !c.seen[fmt.Sprintf("%s@%d", s, v)] {
						missing = append(missing, fmt.Sprintf("%s@%d", s, v))
					}
				}
			}
			c.mu.Unlock()
			t.Fatalf("%d of %d events arrived within %v; missing (first 20): %v", total-len(missing), total, within, missing[:min(20, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDelivery checks the records of a round: per stream, the first time each version is
// seen, versions go 0, 1, 2, ... with nothing missing. A record read twice at the same offset
// (the consumer's doing) is ignored; a second record of an event is a duplicate, which is
// allowed (at-least-once) and counted. It returns the number of duplicates.
func checkDelivery(t *testing.T, recs []consumed, want map[string]int64) int {
	t.Helper()
	next := map[string]int64{}
	offsets := map[string]bool{}
	dups := 0
	for _, r := range recs {
		at := fmt.Sprintf("%s/%d/%d", r.topic, r.partition, r.offset)
		if offsets[at] {
			continue
		}
		offsets[at] = true
		switch {
		case r.version == next[r.stream]:
			next[r.stream]++
		case r.version >= 0 && r.version < next[r.stream]:
			dups++
		default:
			t.Errorf("%s: version %d arrived before version %d (%s)", r.stream, r.version, next[r.stream], at)
			next[r.stream] = r.version + 1
		}
	}
	for s, n := range want {
		if next[s] != n {
			t.Errorf("%s: %d events arrived in order, want %d", s, next[s], n)
		}
	}
	for s := range next {
		if _, ok := want[s]; !ok {
			t.Errorf("records of stream %s, which this round never appended to", s)
		}
	}
	return dups
}

// checkOutbox waits until the outbox is empty and checks that nothing was moved aside.
func checkOutbox(t *testing.T, pool *pgxpool.Pool, within time.Duration) {
	t.Helper()
	waitFor(t, within, "the outbox to empty", func() bool { return outboxEvents(t, pool) == 0 })
	var dead int
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_outbox_dead`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dead != 0 {
		t.Errorf("%d appends were moved aside to annals_outbox_dead", dead)
	}
}

// outboxEvents is the number of events the outbox holds (not yet acknowledged by the broker).
func outboxEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `select coalesce(sum(last_version - first_version + 1), 0) from annals_outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// settledEvents is the number of events the relays of the schema have published and
// deleted from the outbox (the relay counts them as it deletes their rows).
func settledEvents(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `select coalesce(sum(value), 0) from annals_counters where name like 'type:%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sessions is the number of database sessions with the application name.
func sessions(t *testing.T, pool *pgxpool.Pool, appName string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `select count(*) from pg_stat_activity where application_name = $1`, appName).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 10 ms until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	waitEvery(t, within, 10*time.Millisecond, what, cond)
}

// waitEvery polls cond every interval until it holds or the deadline passes, for conditions
// that cost more to check (an HTTP request, a count over a table).
func waitEvery(t *testing.T, within, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(interval)
	}
}

// ---------------------------------------------------------------- SIGKILL

// buildAnnals builds the admin CLI (once per test binary, see buildBinaries).
func buildAnnals(t *testing.T) string {
	t.Helper()
	return buildBinaries(t).annals
}

// process is a program of the deployment running in a process group of its own.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // how it exited; set before done is closed
}

// startProcess starts bin with args and the deployment's environment (vars win over the
// test's own environment) in an empty folder, so that it reads no config/event_sourcing.tsk,
// with its output in name.log. When the test ends it is killed, and when the test failed the
// tail of its log is printed.
func startProcess(t *testing.T, bin string, args []string, vars map[string]string, name string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logPath) // no config/event_sourcing.tsk here: defaults and environment only
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("--- %s (tail)\n%s", name, tail(b, 3000))
			}
		}
	})
	return p
}

// startRelayProcess starts `annals relay` with the deployment's environment; its database
// sessions carry the application name appName.
func startRelayProcess(t *testing.T, bin string, vars map[string]string, name, appName string) *process {
	t.Helper()
	v := maps.Clone(vars)
	v["PGAPPNAME"] = appName // read by pgx like libpq
	return startProcess(t, bin, []string{"relay"}, v, name)
}

// kill sends SIGKILL to the process group and waits for the process to exit.
func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for the process to exit; after the timeout it kills it.
// It reports whether the process exited by itself.
func (p *process) stop(timeout time.Duration) bool {
	if p.exited() {
		return true
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		p.kill()
		return false
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logText is what the process has logged so far.
func (p *process) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRelay_SIGKILL: `annals relay` is killed with SIGKILL while 5,000 events are appended
// to 100 streams; a new relay takes over. Every event must arrive, in order per stream.
func TestRelay_SIGKILL(t *testing.T) {
	bin := buildAnnals(t)
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { sigkillRound(t, bin) })
	}
}

func sigkillRound(t *testing.T, bin string) {
	e := newFaultEnv(t)
	// Appends from another process than the relay's wake it through NOTIFY.
	store := postgres.New(e.pool, postgres.Options{Notify: true})
	c := collect(t, e.brokers, e.eventTopics())
	firstApp := fmt.Sprintf("annals-relay-1-%d", time.Now().UnixNano())
	first := startRelayProcess(t, bin, e.vars, "relay-1", firstApp)

	l := load{streams: 100, events: 5000, writers: 4, perSecond: 1000}
	a := l.start(t, store)
	waitFor(t, 30*time.Second, "a quarter of the events to be consumed", func() bool {
		if first.exited() {
			t.Fatalf("annals relay exited on its own before it was killed")
		}
		return c.unique() >= l.events/4
	})
	if sessions(t, e.pool, firstApp) == 0 {
		t.Fatalf("no database session carries the relay's application name %s", firstApp)
	}
	first.kill()
	killedAt := time.Now()
	atKill, appendedAtKill := c.unique(), a.count()
	startRelayProcess(t, bin, e.vars, "relay-2", fmt.Sprintf("annals-relay-2-%d", time.Now().UnixNano()))
	// The killed relay's database sessions end once PostgreSQL notices; a statement it had
	// sent may still complete. From then on only the new relay publishes.
	waitFor(t, 30*time.Second, "the killed relay's database sessions to end", func() bool { return sessions(t, e.pool, firstApp) == 0 })
	gone := time.Since(killedAt)
	settled := settledEvents(t, e.pool)
	waitFor(t, 30*time.Second, "the new relay to publish", func() bool { return settledEvents(t, e.pool) > settled })
	resumed := time.Since(killedAt)

	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the appends did not finish within 30s (%d of %d)", a.count(), l.events)
	}
	if t.Failed() {
		return
	}
	want := a.snapshot()
	c.waitAll(t, want, 45*time.Second)
	dups := checkDelivery(t, c.records(), want)
	checkOutbox(t, e.pool, 30*time.Second)
	t.Logf("killed the relay (SIGKILL) after %d of %d events appended and %d consumed; its sessions ended %v after the kill, the new relay published %v after the kill; %d duplicates (allowed after a crash)",
		appendedAtKill, l.events, atKill, gone.Round(time.Millisecond), resumed.Round(time.Millisecond), dups)
}

// ---------------------------------------------------------------- broker restart

// stackScript runs scripts/stack.sh with args and fails the test when it fails.
func stackScript(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "stack.sh"), args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/stack.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// requireStackBroker fails unless KAFKA_BROKERS is the broker scripts/stack.sh controls: the
// test stops and starts that one.
func requireStackBroker(t *testing.T, brokers []string) {
	t.Helper()
	out := stackScript(t, "env")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export KAFKA_BROKERS="); ok {
			if stack := strings.Trim(v, `'"`); stack != strings.Join(brokers, ",") {
				t.Fatalf("KAFKA_BROKERS=%s is not the broker of scripts/stack.sh (%s), which this test stops and starts", strings.Join(brokers, ","), stack)
			}
			return
		}
	}
	t.Fatalf("scripts/stack.sh env does not name KAFKA_BROKERS:\n%s", out)
}

func brokerListening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestRelay_BrokerRestart: the broker is stopped for 10 seconds and started again while
// events are appended and a relay runs in-process (as in the writer). The relay must resume
// by itself, and every event must arrive, in order per stream.
func TestRelay_BrokerRestart(t *testing.T) {
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), brokerRestartRound)
	}
}

func brokerRestartRound(t *testing.T) {
	const outage = 10 * time.Second
	e := newFaultEnv(t)
	requireStackBroker(t, e.brokers)
	// Runs before the topics are deleted (cleanups run last-registered first), and whatever
	// happened in between.
	t.Cleanup(func() {
		if !brokerListening(e.brokers[0]) {
			t.Logf("starting the broker again")
			stackScript(t, "up", "kafka")
		}
	})

	var warnings bytes.Buffer
	var warnMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&warnMu, &warnings}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := wiring.NewRelay(e.pool, e.cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- wiring.RunRelay(relayCtx, r, e.pool, e.cfg, log) }()
	t.Cleanup(func() {
		stopRelay()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
		r.Close()
		warnMu.Lock()
		defer warnMu.Unlock()
		if first, _, ok := bytes.Cut(warnings.Bytes(), []byte("\n")); ok {
			if len(first) > 300 {
				first = append(first[:300:300], "..."...)
			}
			t.Logf("the relay logged %d warnings; the first: %s", bytes.Count(warnings.Bytes(), []byte("\n")), first)
		}
	})
	// The writer's set-up: appends in the relay's process wake it directly.
	store := postgres.New(e.pool, postgres.Options{OnAppend: r.Wake})

	// About 20 seconds of appends: before, during and after the outage.
	l := load{streams: 50, events: 3000, writers: 2, perSecond: 150}
	a := l.start(t, store)
	waitFor(t, 30*time.Second, "the relay to publish 300 events", func() bool { return a.count()-outboxEvents(t, e.pool) >= 300 })

	t0 := time.Now()
	stackScript(t, "down", "kafka")
	stopped := time.Since(t0)
	if brokerListening(e.brokers[0]) {
		t.Fatalf("the broker at %s still accepts connections after scripts/stack.sh down kafka", e.brokers[0])
	}
	appendedAtStop := a.count()
	time.Sleep(outage) // the outage is the scenario; nothing waits on it
	t1 := time.Now()
	stackScript(t, "up", "kafka")
	started := time.Since(t1)
	upAt := time.Now()

	// Resumed: the first append made before the broker was back leaves the outbox.
	var pgUpAt time.Time
	var backlog int
	if err := e.pool.QueryRow(context.Background(), `select clock_timestamp(), count(*) from annals_outbox`).Scan(&pgUpAt, &backlog); err != nil {
		t.Fatal(err)
	}
	left := func() int {
		var n int
		if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_outbox where created_at <= $1`, pgUpAt).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, time.Minute, "the relay to publish again after the broker restart", func() bool { return backlog == 0 || left() < backlog })
	resumed := time.Since(upAt)
	waitFor(t, time.Minute, "the relay to publish the appends made during the outage", func() bool { return left() == 0 })
	drained := time.Since(upAt)

	select {
	case <-a.done:
	case <-time.After(time.Minute):
		t.Fatalf("the appends did not finish within a minute of the restart (%d of %d)", a.count(), l.events)
	}
	if t.Failed() {
		return
	}
	checkOutbox(t, e.pool, 30*time.Second)
	// Read after the fact, with a consumer that never saw the outage.
	want := a.snapshot()
	c := collect(t, e.brokers, e.eventTopics())
	c.waitAll(t, want, time.Minute)
	dups := checkDelivery(t, c.records(), want)
	t.Logf("broker stopped in %v after %d events appended, kept down %v, started in %v; the relay published again %v after the broker was up (backlog of %d appends published within %v); %d duplicates",
		stopped.Round(time.Millisecond), appendedAtStop, outage, started.Round(time.Millisecond),
		resumed.Round(time.Millisecond), backlog, drained.Round(time.Millisecond), dups)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

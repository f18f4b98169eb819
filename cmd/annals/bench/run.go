package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/annals-dev/annals/internal/auth"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/load"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/lag"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/services/auditor/auditbench"
)

// Options configure Run.
type Options struct {
	Quick bool
	// Config is the stack's configuration: the event store, the brokers, the mail server,
	// the partitions of new topics. Everything the run creates is isolated from the rest of
	// the stack: schemas, topics and groups of its own, removed at the end.
	Config *config.Config
	// ConfigPath is the configuration file the services read too ("" for none).
	ConfigPath string
	// BinDir holds annals-writer, annals-projector, annals-notifier and annals-auditor.
	BinDir string
	// WorkDir takes the services' logs, the drains' warnings and pgbench's files.
	WorkDir   string
	PGBench   string
	Java      string
	KafkaLibs string
	Progress  io.Writer
	// RedisURL and MongoURI, when set, add the Redis and MongoDB event stores' figures, each
	// beside its server's baseline; RedisBenchmark is the redis-benchmark command (a program
	// and any leading arguments).
	RedisURL       string
	MongoURI       string
	RedisBenchmark []string
	// ProfileDir, when set, takes a CPU profile of this process for each step it runs in
	// process (appends, relay drains, consumer drains): <step>.pprof, for go tool pprof.
	ProfileDir string
}

// Settings are the durations and sizes of a run.
type Settings struct {
	Clients           []int         `json:"clients"`
	PGBenchTime       time.Duration `json:"pgbench_time_ns"`
	AppendTime        time.Duration `json:"append_time_ns"`
	CommandTime       time.Duration `json:"command_time_ns"`
	WarmUp            time.Duration `json:"warm_up_ns"`
	EndToEndTime      time.Duration `json:"end_to_end_time_ns"`
	EndToEndFractions []float64     `json:"end_to_end_fractions"`
	// EndToEndRate is the fixed command rate of the first end-to-end run, below every
	// fraction of the peak: the pipeline's latency floor. CostRate and CostTime are the
	// steady load whose processor time per command the run measures.
	EndToEndRate    float64       `json:"end_to_end_rate"`
	CostRate        float64       `json:"cost_rate"`
	CostTime        time.Duration `json:"cost_time_ns"`
	RelayEvents     int           `json:"relay_events"`
	NotifierEvents  int           `json:"notifier_events"`
	ProducerRecords int           `json:"producer_records"`
	LatencyMessages int           `json:"latency_messages"`
	Partitions      int           `json:"partitions"`
	// NotifierRateLimit is NOTIFIER_RATE_LIMIT during the notifier's drain: 0, no limit, so
	// that the figure is what the notifier can do rather than the limit an operator sets.
	NotifierRateLimit int `json:"notifier_rate_limit"`
}

// DefaultSettings are the full run's (five to six minutes on two cores) or, quick, the
// smoke run's (about a minute and a half: the figures are indicative only).
func DefaultSettings(quick bool, partitions int) Settings {
	s := Settings{
		Clients: []int{1, 8, 32}, EndToEndFractions: []float64{0.25, 0.50, 0.75}, Partitions: partitions,
		PGBenchTime: 10 * time.Second, AppendTime: 8 * time.Second, CommandTime: 15 * time.Second, WarmUp: 3 * time.Second,
		EndToEndTime: 15 * time.Second, EndToEndRate: 20, CostRate: 150, CostTime: 15 * time.Second, RelayEvents: 100_000, NotifierEvents: 6_000, ProducerRecords: 100_000, LatencyMessages: 1_000,
	}
	if quick {
		s.PGBenchTime, s.AppendTime, s.CommandTime, s.WarmUp, s.EndToEndTime = 2*time.Second, 1500*time.Millisecond, 2*time.Second, time.Second, 3*time.Second
		s.CostTime = 3 * time.Second
		s.RelayEvents, s.NotifierEvents, s.ProducerRecords, s.LatencyMessages = 10_000, 1_500, 10_000, 100
	}
	return s
}

// Raw is every measurement of a run in full.
type Raw struct {
	PGBench     []PGBench    `json:"pgbench"`
	Appends     []AppendRun  `json:"appends"`
	Commands    []CommandRun `json:"commands"`
	RecordBytes int          `json:"record_bytes"` // median of the sampled records: value, key, headers
	ValueBytes  int          `json:"value_bytes"`  // median Avro value
	Sampled     int          `json:"sampled"`
	EndToEnd    []EndToEnd   `json:"end_to_end"`
	// EndToEndFixed is the run at Settings.EndToEndRate; Cost the run at Settings.CostRate.
	EndToEndFixed EndToEnd       `json:"end_to_end_fixed"`
	Cost          CostRun        `json:"cost"`
	Producer      Producer       `json:"producer_performance"`
	Consumer      Consumer       `json:"consumer_performance"`
	KafkaLatency  Latencies      `json:"end_to_end_latency"`
	Relay         RelayRun       `json:"relay"`
	NoOp          benchkit.Drain `json:"noop"`
	Projector     benchkit.Drain `json:"projector"`
	Auditor       benchkit.Drain `json:"auditor"`
	Notifier      benchkit.Drain `json:"notifier"`
	SMTP          SMTP           `json:"smtp"`

	// Stores are the runs on the other event stores, Redis and MongoDB, when the run has
	// their addresses.
	Stores []StoreRun `json:"stores,omitempty"`

	// PGBenchEvents are pgbench's runs on the event store's own table, after PGBench: one
	// event row and a batch of 100 per transaction, by 1 and 8 clients.
	PGBenchEvents []PGBenchEvents `json:"pgbench_event_rows"`
}

// AppendRun is one run of the append workload.
type AppendRun struct {
	Batch       int                 `json:"batch"`
	Concurrency int                 `json:"concurrency"`
	Result      benchkit.Throughput `json:"result"`
}

// CommandRun is one closed-loop run of commands over HTTP, with the events the writer
// appended meanwhile (counted in the event store).
type CommandRun struct {
	Clients      int         `json:"clients"`
	Result       load.Result `json:"result"`
	Events       int         `json:"events"`
	EventsPerSec float64     `json:"events_per_sec"`
	Usage        Usage       `json:"usage"`
}

// RelayRun is the relay's drain of a pre-filled outbox.
type RelayRun struct {
	Events       int           `json:"events"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
}

// Run measures the baselines and the whole pipeline, in the order of the package comment,
// and returns the results. It always removes what it created, even when it fails.
func Run(ctx context.Context, opts Options) (res *Results, err error) {
	r := &runner{opts: opts, set: DefaultSettings(opts.Quick, opts.Config.Kafka.TopicPartitions)}
	if opts.Config.EventSigning.Key == "" {
		// The run's relays sign and its consumers verify, as a deployment's do: with a key of
		// the run's own when the configuration has none.
		c := *opts.Config
		secret := make([]byte, 32)
		_, _ = rand.Read(secret) // crypto/rand never fails
		c.EventSigning.Key = config.Secret("bench:" + base64.StdEncoding.EncodeToString(secret))
		r.opts.Config = &c
	}
	stamp := time.Now()
	r.id = fmt.Sprintf("bench_%d_%d", stamp.Unix(), os.Getpid())
	r.prefix = strings.ReplaceAll(r.id, "_", "-")
	if r.opts.Progress == nil {
		r.opts.Progress = io.Discard
	}
	if r.opts.Java == "" {
		r.opts.Java = "java"
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(opts.WorkDir, "drains.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	r.log = slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defer r.cleanup()

	r.admin, err = r.pool(ctx, "")
	if err != nil {
		return nil, err
	}
	if err := r.admin.Ping(ctx); err != nil {
		return nil, fmt.Errorf("bench: PostgreSQL: %w", err)
	}
	r.kafka = Kafka{Java: r.opts.Java, Libs: opts.KafkaLibs, Brokers: opts.Config.Kafka.Brokers}
	res = &Results{Version: 1, Quick: opts.Quick, StartedAt: stamp.UTC(), Settings: r.set,
		Machine: describeMachine(ctx, r.admin, r.opts.Java, opts.KafkaLibs)}
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"pgbench", r.pgbench},
		{"pgbench, event rows", r.pgbenchEvents},
		{"appends", r.appends},
		{"pipeline", r.pipeline},
		{"kafka", r.kafkaBaselines},
		{"relay and consumers", r.relayAndConsumers},
		{"notifier", r.notifier},
		{"other stores", r.stores},
	} {
		if err := step.run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	res.Machine.LoadAtEnd = loadAverage()
	res.Raw = r.raw
	res.Baselines, res.Figures, res.Curves = r.figures()
	for _, f := range res.Figures {
		if f.Target != nil {
			if f.Target.Met {
				res.TargetsMet++
			} else {
				res.TargetsMissed++
			}
		}
	}
	res.Seconds = time.Since(stamp).Seconds()
	return res, nil
}

type runner struct {
	opts     Options
	set      Settings
	raw      Raw
	id       string // names of schemas: bench_<unix time>_<pid>
	prefix   string // of topics and groups: bench-<unix time>-<pid>
	token    string // the API key of the services it starts
	log      *slog.Logger
	kafka    Kafka
	admin    *pgxpool.Pool
	pools    []*pgxpool.Pool
	schemas  []string
	topics   []string
	groups   []string
	services []*Service
}

// profiled runs fn, under a CPU profile of this process when Options.ProfileDir is set.
func (r *runner) profiled(name string, fn func() error) error {
	if r.opts.ProfileDir == "" {
		return fn()
	}
	if err := os.MkdirAll(r.opts.ProfileDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(r.opts.ProfileDir, name+".pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	err = fn()
	pprof.StopCPUProfile()
	return err
}

func (r *runner) say(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "bench: "+format+"\n", args...)
}

// connString is the stack's connection string with search_path set to schema (none when
// empty), for pgx, which passes parameters it does not know to the server.
func (r *runner) connString(schema string) (string, error) {
	u, err := url.Parse(r.opts.Config.EventStore.ConnString())
	if err != nil {
		return "", errors.New("bench: DATABASE_URL / EVENT_STORE_* do not form a valid PostgreSQL URL")
	}
	if schema != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// libpqURL is the stack's connection string for libpq (pgbench), without pgx's pool keys.
func (r *runner) libpqURL() (string, error) {
	s, err := r.connString("")
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(s)
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pool connects to schema (the default search path when empty) with the configured pool
// size, as the services do.
func (r *runner) pool(ctx context.Context, schema string) (*pgxpool.Pool, error) {
	s, err := r.connString(schema)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, errors.New("bench: DATABASE_URL / EVENT_STORE_* do not form a valid PostgreSQL connection string")
	}
	cfg.MaxConns = int32(max(r.opts.Config.EventStore.ConnectionPool, 10))
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.pools = append(r.pools, p)
	return p, nil
}

// schema creates a schema of the run with the event store's tables and connects to it.
func (r *runner) schema(ctx context.Context, suffix string) (*pgxpool.Pool, string, error) {
	name := r.id + "_" + suffix
	if _, err := r.admin.Exec(ctx, "create schema "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, "", fmt.Errorf("bench: create schema %s: %w", name, err)
	}
	r.schemas = append(r.schemas, name)
	p, err := r.pool(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if _, err := postgres.Migrate(ctx, p, nil); err != nil {
		return nil, "", err
	}
	return p, name, nil
}

// deployment is the stack's configuration with a topic prefix (and so groups) of its own.
func (r *runner) deployment(prefix string) *config.Config {
	c := *r.opts.Config
	c.Kafka.TopicPrefix = prefix
	return &c
}

func (r *runner) createTopics(ctx context.Context, topics []relay.Topic) error {
	for _, t := range topics {
		r.topics = append(r.topics, t.Name)
	}
	return relay.EnsureTopicsWith(ctx, r.opts.Config.Kafka.Brokers, r.opts.Config.Kafka.Security(), topics, io.Discard)
}

// cleanup stops the services and removes the run's schemas, topics and groups.
func (r *runner) cleanup() {
	StopServices(r.services, 30*time.Second)
	for _, p := range r.pools {
		if p != r.admin {
			p.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r.admin != nil {
		for _, s := range r.schemas {
			if _, err := r.admin.Exec(ctx, "drop schema if exists "+pgx.Identifier{s}.Sanitize()+" cascade"); err != nil {
				r.say("could not drop schema %s: %v", s, err)
			}
		}
		r.admin.Close()
	}
	transport, release, err := r.opts.Config.Kafka.Security().RoundTripper()
	if err != nil {
		r.say("could not delete the consumer groups and topics: %v", err)
		return
	}
	defer release()
	client := &kafka.Client{Addr: kafka.TCP(r.opts.Config.Kafka.Brokers...), Timeout: 30 * time.Second, Transport: transport}
	if len(r.groups) > 0 {
		if _, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: r.groups}); err != nil {
			r.say("could not delete the consumer groups: %v", err)
		}
	}
	if len(r.topics) > 0 {
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: r.topics}); err != nil {
			r.say("could not delete the topics: %v", err)
		}
	}
}

// ---------------------------------------------------------------- PostgreSQL

func (r *runner) pgbench(ctx context.Context) error {
	if r.opts.PGBench == "" {
		return errors.New("bench: pgbench not found (PostgreSQL's server package ships it)")
	}
	schema := r.id + "_pgbench"
	if err := PGBenchSchema(ctx, r.admin, schema); err != nil {
		return err
	}
	r.schemas = append(r.schemas, schema)
	u, err := r.libpqURL()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.opts.WorkDir, "pgbench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range r.set.Clients {
		r.say("pgbench: one INSERT per transaction, %d client(s), %v", c, r.set.PGBenchTime)
		server, client := postgresCPU(), rusageCPU(syscall.RUSAGE_CHILDREN)
		p, err := PGBenchInsert(ctx, r.opts.PGBench, u, schema, dir, c, r.set.PGBenchTime)
		if err != nil {
			return err
		}
		if tx := p.TPS * r.set.PGBenchTime.Seconds(); tx > 0 {
			p.CPUMsPerTx = 1000 * (postgresCPU() - server + rusageCPU(syscall.RUSAGE_CHILDREN) - client) / tx
		}
		r.say("pgbench: %.0f tx/s, p50 %.2f ms, p99 %.2f ms, %.3f ms of processor time per transaction (PostgreSQL and pgbench)",
			p.TPS, benchkit.Ms(p.Latency.P50), benchkit.Ms(p.Latency.P99), p.CPUMsPerTx)
		r.raw.PGBench = append(r.raw.PGBench, p)
	}
	return nil
}

// pgbenchEvents runs pgbench on the event store's own table, migrated into pgbench's schema:
// one event row per transaction, then a batch of 100, by 1 and 8 clients, as the appends run,
// so that the report shows the ratio of events/s PostgreSQL itself gets from a batch.
func (r *runner) pgbenchEvents(ctx context.Context) error {
	schema := r.id + "_pgbench" // r.pgbench's, removed at the end with the others
	pool, err := r.pool(ctx, schema)
	if err != nil {
		return err
	}
	if err := PGBenchEventsSchema(ctx, pool, schema); err != nil {
		return err
	}
	u, err := r.libpqURL()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.opts.WorkDir, "pgbench")
	for _, c := range []int{1, 8} {
		byRows := map[int]float64{}
		for _, rows := range []int{1, 100} {
			r.say("pgbench: %d event row(s) per transaction into annals_events, %d client(s), %v", rows, c, r.set.PGBenchTime)
			p, err := PGBenchEventRows(ctx, r.opts.PGBench, u, schema, dir, rows, c, r.set.PGBenchTime)
			if err != nil {
				return err
			}
			r.say("pgbench: %.0f tx/s, %.0f events/s, p50 %.2f ms, p99 %.2f ms", p.TPS, p.RowsPerSec, benchkit.Ms(p.Latency.P50), benchkit.Ms(p.Latency.P99))
			r.raw.PGBenchEvents = append(r.raw.PGBenchEvents, p)
			byRows[rows] = p.RowsPerSec
		}
		if byRows[1] > 0 {
			r.say("pgbench: 100-row/1-row events/s, %d client(s): %.1f×", c, byRows[100]/byRows[1])
		}
	}
	return nil
}

func (r *runner) appends(ctx context.Context) error {
	pool, _, err := r.schema(ctx, "append")
	if err != nil {
		return err
	}
	store := postgres.New(pool, postgres.Options{})
	for _, batch := range []int{1, 100} {
		for _, c := range []int{1, 8} {
			r.say("appends: %d event(s) per append, %d appender(s), %v", batch, c, r.set.AppendTime)
			var t benchkit.Throughput
			err := r.profiled(fmt.Sprintf("appends-%d-by-%d", batch, c), func() (err error) {
				t, err = benchkit.Appends(ctx, store, benchkit.Closed{Concurrency: c, Duration: r.set.AppendTime}, batch)
				return err
			})
			if err != nil {
				return err
			}
			r.say("appends: %.0f events/s, p50 %.2f ms, p99 %.2f ms", t.EventsPerSec, benchkit.Ms(t.Latency.P50), benchkit.Ms(t.Latency.P99))
			r.raw.Appends = append(r.raw.Appends, AppendRun{Batch: batch, Concurrency: c, Result: t})
		}
	}
	return nil
}

// ---------------------------------------------------------------- the pipeline

// pipeline runs the four services in a deployment of their own and drives the writer over
// HTTP: closed loops at rising concurrency, then steady rates for the end-to-end latency.
func (r *runner) pipeline(ctx context.Context) error {
	pool, schema, err := r.schema(ctx, "deploy")
	if err != nil {
		return err
	}
	cfg := r.deployment(r.prefix)
	if err := r.createTopics(ctx, wiring.Topics(cfg)); err != nil {
		return err
	}
	dbURL, err := r.connString(schema)
	if err != nil {
		return err
	}
	env := map[string]string{
		"DATABASE_URL": dbURL, "KAFKA_BROKERS": strings.Join(cfg.Kafka.Brokers, ","), "KAFKA_TOPIC_PREFIX": cfg.Kafka.TopicPrefix,
		"KAFKA_TOPIC_PARTITIONS": strconv.Itoa(cfg.Kafka.TopicPartitions), "SMTP_ADDR": cfg.SMTP.Addr, "ANNALS_CONFIG": "",
		"EVENT_SIGNING_KEY": cfg.EventSigning.Key.Reveal(),
		// One key drives every command, harder than one principal may by default.
		"COMMAND_RATE_LIMIT": "0", "NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR": "0",
	}
	// The run's own API key: commands to the writer, reads of the projector's read models.
	token, entry, err := auth.NewAPIKey("bench", auth.ScopeCommands, auth.ScopeReadModelsRead)
	if err != nil {
		return err
	}
	env["API_KEYS"] = entry
	r.token = token
	if r.opts.ConfigPath != "" {
		abs, err := filepath.Abs(r.opts.ConfigPath)
		if err != nil {
			return err
		}
		env["ANNALS_CONFIG"] = abs
	}
	dir := filepath.Join(r.opts.WorkDir, "services")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.say("starting the writer, projector, notifier and auditor (schema %s, topic prefix %s, logs in %s)", schema, cfg.Kafka.TopicPrefix, dir)
	r.services, err = StartServices(ctx, r.opts.BinDir, dir, env)
	if err != nil {
		return err
	}
	writer, projector := r.services[0].URL, r.services[1].URL
	var groups []string
	for _, s := range wiring.ConsumingServices {
		groups = append(groups, cfg.ConsumerGroup(s))
	}
	r.groups = append(r.groups, groups...)
	mon, err := lag.New(lag.Config{Brokers: cfg.Kafka.Brokers, Security: cfg.Kafka.Security(), Topics: wiring.EventTopics(cfg), Groups: groups})
	if err != nil {
		return err
	}
	meter := usageMeter{services: r.services, group: cfg.ConsumerGroup("projector")}

	if r.set.WarmUp > 0 {
		r.say("commands: warming up for %v, 8 clients (not measured)", r.set.WarmUp)
		if _, err := load.Run(ctx, load.Config{BaseURL: writer, Token: r.token, Concurrency: 8, Duration: r.set.WarmUp}); err != nil {
			return err
		}
	}
	for _, c := range r.set.Clients {
		if err := r.caughtUp(ctx, pool, mon); err != nil {
			return err
		}
		before, err := countEvents(ctx, pool)
		if err != nil {
			return err
		}
		r.say("commands: closed loop, %d client(s), %v", c, r.set.CommandTime)
		start, err := meter.read(ctx)
		if err != nil {
			return err
		}
		res, err := load.Run(ctx, load.Config{BaseURL: writer, Token: r.token, Concurrency: c, Duration: r.set.CommandTime, Progress: r.opts.Progress})
		if err != nil {
			return err
		}
		usage, err := meter.since(ctx, start)
		if err != nil {
			return err
		}
		after, err := countEvents(ctx, pool)
		if err != nil {
			return err
		}
		run := CommandRun{Clients: c, Result: res, Events: after - before, EventsPerSec: float64(after-before) / res.Elapsed.Seconds(), Usage: usage}
		r.say("commands: %s; %.0f events/s", res, run.EventsPerSec)
		r.say("usage: %s", usage)
		r.raw.Commands = append(r.raw.Commands, run)
	}

	// Kafka's baselines send records of Annals' size: the median of the records the relay
	// published for these commands.
	var values, records []int
	for _, category := range wiring.Categories {
		for p := range min(2, cfg.Kafka.TopicPartitions) {
			v, rec, err := benchkit.RecordSizesWith(ctx, cfg.Kafka.Brokers, cfg.Kafka.Security(), cfg.TopicName(category), p, 2000)
			if err != nil {
				return err
			}
			values, records = append(values, v...), append(records, rec...)
		}
	}
	if len(records) == 0 {
		return errors.New("bench: the writer's topics hold no record to measure")
	}
	slices.Sort(values)
	slices.Sort(records)
	r.raw.RecordBytes, r.raw.ValueBytes, r.raw.Sampled = records[len(records)/2], values[len(values)/2], len(records)
	r.say("records: median %d bytes (Avro value %d bytes) over %d published records", r.raw.RecordBytes, r.raw.ValueBytes, r.raw.Sampled)

	peak := 0.0
	for _, c := range r.raw.Commands {
		peak = max(peak, c.Result.Throughput)
	}
	endToEnd := func(rate float64, what string) (EndToEnd, error) {
		if err := r.caughtUp(ctx, pool, mon); err != nil {
			return EndToEnd{}, err
		}
		r.say("end to end: %.0f commands/s (%s), %v, each read back from the projector with min_version", rate, what, r.set.EndToEndTime)
		start, err := meter.read(ctx)
		if err != nil {
			return EndToEnd{}, err
		}
		e, err := RunEndToEnd(ctx, EndToEndConfig{WriterURL: writer, ProjectorURL: projector, Token: r.token, Rate: rate, Duration: r.set.EndToEndTime, Progress: r.opts.Progress})
		if err != nil {
			return EndToEnd{}, err
		}
		if e.Usage, err = meter.since(ctx, start); err != nil {
			return EndToEnd{}, err
		}
		r.say("end to end: %d reads (every %d command(s)), p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, %d failed; commands: %s",
			e.Latency.Count, e.ReadEvery, benchkit.Ms(e.Latency.P50), benchkit.Ms(e.Latency.P90), benchkit.Ms(e.Latency.P99), e.ReadErrors, e.Commands)
		r.say("usage: %s", e.Usage)
		if e.Latency.Count == 0 {
			return EndToEnd{}, errors.New("bench: no read of the projector succeeded")
		}
		return e, nil
	}
	if r.raw.EndToEndFixed, err = endToEnd(r.set.EndToEndRate, "a fixed rate"); err != nil {
		return err
	}
	for _, f := range r.set.EndToEndFractions {
		e, err := endToEnd(f*peak, fmt.Sprintf("%.0f%% of %.0f", 100*f, peak))
		if err != nil {
			return err
		}
		r.raw.EndToEnd = append(r.raw.EndToEnd, e)
	}

	// The processor time of every program of the pipeline per command, at a steady rate,
	// counted until every group has caught up: what a command costs the machine.
	if err := r.caughtUp(ctx, pool, mon); err != nil {
		return err
	}
	r.say("cost: %.0f commands/s for %v, then until every group has caught up; processor time of PostgreSQL, the broker, the mail server and the services, from /proc",
		r.set.CostRate, r.set.CostTime)
	before, _ := pipelineCPU(r.services)
	res, err := load.Run(ctx, load.Config{BaseURL: writer, Token: r.token, Rate: r.set.CostRate, Concurrency: 64, Duration: r.set.CostTime, Progress: r.opts.Progress})
	if err != nil {
		return err
	}
	if err := r.caughtUp(ctx, pool, mon); err != nil {
		return err
	}
	after, brokers := pipelineCPU(r.services)
	r.raw.Cost = costOf(r.set.CostRate, res, before, after, brokers)
	r.say("cost: %s; %.2f ms of processor time per command: %s", res, r.raw.Cost.MsPerCommand, r.raw.Cost.breakdown())
	r.say("stopping the services")
	StopServices(r.services, 30*time.Second)
	return nil
}

func countEvents(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `select count(*) from annals_events`).Scan(&n)
	return n, err
}

// caughtUp waits until the outbox is empty and every consumer group has committed every
// record of the topics, so that each run starts with the whole pipeline idle rather than
// behind on the last one (the notifier, held to NOTIFIER_RATE_LIMIT emails a second, is the
// slowest to catch up after a burst).
func (r *runner) caughtUp(ctx context.Context, pool *pgxpool.Pool, mon *lag.Monitor) error {
	start := time.Now()
	last := start
	for {
		empty, err := postgres.NewOutbox(pool).Empty(ctx)
		if err != nil {
			return err
		}
		behind := map[string]int64{}
		if empty {
			s, err := mon.Poll(ctx)
			if err != nil {
				return err
			}
			for _, g := range s.Groups {
				committed := map[string]int64{}
				for _, p := range g.Partitions {
					committed[p.Topic+"/"+strconv.Itoa(p.Partition)] = p.Committed
				}
				for _, tp := range s.Topics {
					// No committed offset (-1, or no entry) on an empty partition is not lag.
					if c := max(committed[tp.Topic+"/"+strconv.Itoa(tp.Partition)], 0); c < tp.End {
						behind[g.Name] += tp.End - c
					}
				}
			}
			if len(behind) == 0 {
				return nil
			}
		}
		if time.Since(start) > 3*time.Minute {
			return fmt.Errorf("bench: the pipeline has not caught up after 3 minutes (outbox pending %v, records behind %v)", !empty, behind)
		}
		if time.Since(last) >= 2*time.Second {
			r.say("waiting for the pipeline to catch up: outbox pending %v, records behind by group %v", !empty, behind)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- Kafka

func (r *runner) kafkaBaselines(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(r.opts.KafkaLibs, "kafka-tools-"+r.kafkaVersion()+".jar")); r.opts.KafkaLibs == "" || err != nil {
		return fmt.Errorf("bench: Kafka's tools not found in %q (KAFKA_LIBS; scripts/stack.sh install fetches them)", r.opts.KafkaLibs)
	}
	pp := r.prefix + "-producer-performance"
	if err := r.createTopics(ctx, []relay.Topic{{Name: pp, Partitions: r.set.Partitions, ReplicationFactor: 1}}); err != nil {
		return err
	}
	r.say("ProducerPerformance: %d records of %d bytes, acks=all, %d partitions", r.set.ProducerRecords, r.raw.RecordBytes, r.set.Partitions)
	p, err := r.kafka.ProducerPerformance(ctx, pp, r.set.ProducerRecords, r.raw.RecordBytes)
	if err != nil {
		return err
	}
	r.say("ProducerPerformance: %.0f records/s, p50 %.0f ms, p99 %.0f ms", p.RecordsPerSec, p.P50Ms, p.P99Ms)
	r.raw.Producer = p

	group := r.prefix + "-consumer-performance"
	r.groups = append(r.groups, group)
	r.say("ConsumerPerformance: %d records, fresh group", r.set.ProducerRecords)
	c, err := r.kafka.ConsumerPerformance(ctx, pp, group, r.set.ProducerRecords)
	if err != nil {
		return err
	}
	r.say("ConsumerPerformance: %.0f records/s fetching, %.0f records/s with the group join", c.FetchRecordsPerSec, c.RecordsPerSec)
	r.raw.Consumer = c

	e2e := r.prefix + "-end-to-end-latency"
	if err := r.createTopics(ctx, []relay.Topic{{Name: e2e, Partitions: 1, ReplicationFactor: 1}}); err != nil {
		return err
	}
	r.say("EndToEndLatency: %d messages of %d bytes, one at a time, acks=all", r.set.LatencyMessages, r.raw.RecordBytes)
	l, err := r.kafka.EndToEndLatency(ctx, e2e, r.set.LatencyMessages, r.raw.RecordBytes)
	if err != nil {
		return err
	}
	r.say("EndToEndLatency: p50 %.0f ms, p99 %.0f ms (whole milliseconds)", l.P50Ms, l.P99Ms)
	r.raw.KafkaLatency = l
	return nil
}

func (r *runner) kafkaVersion() string {
	jars, _ := filepath.Glob(filepath.Join(r.opts.KafkaLibs, "kafka-clients-*.jar"))
	if len(jars) == 0 {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(jars[0]), "kafka-clients-"), ".jar")
}

// ---------------------------------------------------------------- relay and consumers

// fill appends a mix of n events to a fresh schema, creates a deployment's topics for them
// and lets a relay publish them: it returns the schema's pool, the deployment, the streams
// and the relay's drain.
func (r *runner) fill(ctx context.Context, suffix string, n int, seed uint64) (*pgxpool.Pool, *config.Config, []benchkit.Stream, RelayRun, error) {
	pool, _, err := r.schema(ctx, suffix)
	if err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	streams, err := benchkit.Mix(n, seed)
	if err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	total := benchkit.Count(streams)
	r.say("relay: filling the outbox with %d events of %d streams", total, len(streams))
	if err := benchkit.Fill(ctx, postgres.New(pool, postgres.Options{}), streams, 8); err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	cfg := r.deployment(r.prefix + "-" + suffix)
	if err := r.createTopics(ctx, wiring.Topics(cfg)); err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	rl, err := wiring.NewRelay(pool, cfg, r.log, prometheus.NewRegistry())
	if err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	defer rl.Close()
	r.say("relay: draining %d events to Kafka (%d partitions, acks=all), started cold", total, cfg.Kafka.TopicPartitions)
	var took time.Duration
	err = r.profiled("relay-"+suffix, func() (err error) {
		took, err = benchkit.RelayDrain(ctx, pool, rl, 10*time.Minute, r.opts.Progress)
		return err
	})
	if err != nil {
		return nil, nil, nil, RelayRun{}, err
	}
	run := RelayRun{Events: total, Elapsed: took, EventsPerSec: float64(total) / took.Seconds()}
	r.say("relay: %d events in %v: %.0f events/s", total, took.Round(time.Millisecond), run.EventsPerSec)
	return pool, cfg, streams, run, nil
}

// consumerConfig is the group's configuration as the services build it, for group.
func (r *runner) consumerConfig(cfg *config.Config, pool *pgxpool.Pool, group string) (consume.Config, error) {
	r.groups = append(r.groups, group)
	c, err := wiring.ConsumerConfig(cfg, pool, group, r.log, nil)
	c.DLQTopic = cfg.DLQTopic(cfg.ConsumerGroup("projector"))
	return c, err
}

func (r *runner) relayAndConsumers(ctx context.Context) error {
	pool, cfg, streams, run, err := r.fill(ctx, "fill", r.set.RelayEvents, 1)
	if err != nil {
		return err
	}
	r.raw.Relay = run
	total := benchkit.Count(streams)
	for _, d := range []struct {
		name string
		dst  *benchkit.Drain
		run  func(benchkit.DrainConfig) (benchkit.Drain, error)
	}{
		{"noop", &r.raw.NoOp, func(dc benchkit.DrainConfig) (benchkit.Drain, error) { return benchkit.DrainNoOp(ctx, dc) }},
		{"projector", &r.raw.Projector, func(dc benchkit.DrainConfig) (benchkit.Drain, error) { return DrainProjector(ctx, pool, dc) }},
		{"auditor", &r.raw.Auditor, func(dc benchkit.DrainConfig) (benchkit.Drain, error) { return auditbench.Drain(ctx, pool, dc) }},
	} {
		label := d.name + " drain"
		r.say("%s: %d events in %d partitions, fresh group", label, total, cfg.Kafka.TopicPartitions)
		var res benchkit.Drain
		cc, err := r.consumerConfig(cfg, pool, cfg.ConsumerGroup(d.name))
		if err != nil {
			return err
		}
		err = r.profiled(d.name, func() (err error) {
			res, err = d.run(benchkit.DrainConfig{Consumer: cc, Events: total, Progress: r.opts.Progress, Label: label})
			return err
		})
		if err != nil {
			return err
		}
		r.say("%s: %.0f events/s fetching (%.0f with the group join), records of %.0f bytes", label, res.EventsPerSec, res.WithJoinPerSec, res.RecordBytes)
		*d.dst = res
	}
	return nil
}

func (r *runner) notifier(ctx context.Context) error {
	pool, cfg, streams, _, err := r.fill(ctx, "mail", r.set.NotifierEvents, 2)
	if err != nil {
		return err
	}
	app := *cfg
	app.Notifier.RateLimit = r.set.NotifierRateLimit
	app.Notifier.EmailsPerPrincipalHour = 0 // the filled events share one principal
	emails := benchkit.Emails(streams)
	total := benchkit.Count(streams)
	r.say("notifier drain: %d events, %d emails to %s, rate limit off, fresh group", total, emails, app.SMTP.Addr)
	var d benchkit.Drain
	cc, err := r.consumerConfig(cfg, pool, cfg.ConsumerGroup("notifier"))
	if err != nil {
		return err
	}
	err = r.profiled("notifier", func() (err error) {
		d, err = DrainNotifier(ctx, pool, &app, cfg.TopicName("user"), emails, benchkit.DrainConfig{
			Consumer: cc, Events: total, Progress: r.opts.Progress, Label: "notifier drain"})
		return err
	})
	if err != nil {
		return err
	}
	r.say("notifier drain: %.0f emails/s, %.0f events/s fetching", d.EmailsPerSec, d.EventsPerSec)
	r.raw.Notifier = d
	r.say("SMTP: %d emails over 8 plain SMTP sessions", emails)
	s, err := SMTPSend(ctx, app.SMTP.Addr, r.prefix+".bench.example", emails, 8)
	if err != nil {
		return err
	}
	r.say("SMTP: %.0f emails/s, messages of %d bytes", s.EmailsPerSec, s.MessageBytes)
	r.raw.SMTP = s
	return nil
}

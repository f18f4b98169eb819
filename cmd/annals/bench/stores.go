package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/mongodb"
	"github.com/annals-dev/annals/pkg/events/redis"
	"github.com/annals-dev/annals/pkg/relay"
)

// The other event stores, Redis and MongoDB, are each measured beside their own server's
// baseline in the same run: redis-benchmark's XADD of an event-sized value (one write command
// per round trip, as fsynced as the server's appendfsync makes it), and, for MongoDB (whose
// server ships no load tool), the official driver's insertOne of an event-sized document with
// the write concern the store uses. Annals' figures are the library's single-event appends and
// the relay's drain of a filled outbox.

// StoreClients are the appenders of the stores' runs, and of their baselines.
var StoreClients = []int{1, 8}

// StoreRun is what a run measured on one other event store.
type StoreRun struct {
	Store string `json:"store"` // "redis", "mongodb"
	// Baseline is the server's own figure at each of StoreClients, and BaselineTool what
	// measured it.
	Baseline     []StoreBaseline `json:"baseline"`
	BaselineTool string          `json:"baseline_tool"`
	Appends      []AppendRun     `json:"appends"`
	Relay        RelayRun        `json:"relay"`
}

// StoreBaseline is a server's own write rate at a number of clients.
type StoreBaseline struct {
	Clients   int              `json:"clients"`
	OpsPerSec float64          `json:"ops_per_sec"`
	Latency   benchkit.Latency `json:"latency"`
}

// StoreFigureIDs are the ids of the figures of the other stores, for those a run measured.
func StoreFigureIDs(stores ...string) []string {
	var ids []string
	for _, s := range stores {
		for _, c := range StoreClients {
			ids = append(ids, fmt.Sprintf("%s.baseline.c%d.ops_per_sec", s, c))
		}
	}
	for _, s := range stores {
		for _, c := range StoreClients {
			ids = append(ids, fmt.Sprintf("stores.%s.appends.c%d.events_per_sec", s, c))
		}
		ids = append(ids, fmt.Sprintf("stores.%s.relay.events_per_sec", s))
	}
	return ids
}

// stores measures Redis and MongoDB when the run has their addresses, each with its baseline.
func (r *runner) stores(ctx context.Context) error {
	if r.opts.RedisURL == "" {
		r.say("stores: no Redis (REDIS_URL): its figures are left out")
	} else if err := r.redisStore(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if r.opts.MongoURI == "" {
		r.say("stores: no MongoDB (MONGODB_URI): its figures are left out")
	} else if err := r.mongoStore(ctx); err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	return nil
}

// storeEvents is how many events the relay drains of each other store: a tenth of the
// PostgreSQL relay's, as those stores append more slowly and the fill is not what is measured.
func (r *runner) storeEvents() int { return max(r.set.RelayEvents/10, 1000) }

// storeAppends runs the single-event appends on s at each of StoreClients.
func (r *runner) storeAppends(ctx context.Context, name string, s events.Appender) ([]AppendRun, error) {
	var out []AppendRun
	for _, c := range StoreClients {
		r.say("%s: appends of 1 event, %d appender(s), %v", name, c, r.set.AppendTime)
		var t benchkit.Throughput
		err := r.profiled(fmt.Sprintf("%s-appends-by-%d", name, c), func() (err error) {
			t, err = benchkit.Appends(ctx, s, benchkit.Closed{Concurrency: c, Duration: r.set.AppendTime}, 1)
			return err
		})
		if err != nil {
			return nil, err
		}
		r.say("%s: %.0f events/s, p50 %.2f ms, p99 %.2f ms", name, t.EventsPerSec, benchkit.Ms(t.Latency.P50), benchkit.Ms(t.Latency.P99))
		out = append(out, AppendRun{Batch: 1, Concurrency: c, Result: t})
	}
	return out, nil
}

// ---------------------------------------------------------------- Redis

func (r *runner) redisStore(ctx context.Context) error {
	opt, err := goredis.ParseURL(r.opts.RedisURL)
	if err != nil {
		return errors.New("bench: REDIS_URL is not a valid redis:// URL")
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	prefix := r.id + "_redis"
	defer r.dropRedis(rdb, prefix)
	run := StoreRun{Store: "redis", BaselineTool: "redis-benchmark XADD"}
	for _, c := range StoreClients {
		r.say("redis-benchmark: XADD of an event-sized value, %d client(s)", c)
		b, err := RedisBenchmark(ctx, r.opts.RedisBenchmark, opt, "{"+prefix+"}:baseline", c, r.storeOps())
		if err != nil {
			return err
		}
		r.say("redis-benchmark: %.0f ops/s, p50 %.2f ms, p99 %.2f ms", b.OpsPerSec, benchkit.Ms(b.Latency.P50), benchkit.Ms(b.Latency.P99))
		run.Baseline = append(run.Baseline, b)
	}
	if run.Appends, err = r.storeAppends(ctx, "redis", redis.New(rdb, redis.Options{Prefix: prefix + "_appends"})); err != nil {
		return err
	}
	if run.Relay, err = r.redisRelay(ctx, rdb, prefix+"_relay"); err != nil {
		return err
	}
	r.raw.Stores = append(r.raw.Stores, run)
	return nil
}

// storeOps is the requests of each redis-benchmark run: about as many as the appends' duration
// takes at the server's usual pace, so that both run for a similar time.
func (r *runner) storeOps() int { return max(int(r.set.AppendTime.Seconds()*5000), 2000) }

// dropRedis deletes the run's keys: every key of the run's prefixes.
func (r *runner) dropRedis(rdb *goredis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := rdb.Scan(ctx, 0, "{"+prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Unlink(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		r.say("could not delete the Redis keys of %s: %v", prefix, err)
	}
}

// RedisBenchmark runs redis-benchmark (cmd: the program and any leading arguments) against the
// server of opt: n XADDs of an event-sized value to key by clients connections, one command
// per round trip, and reads its CSV figures.
func RedisBenchmark(ctx context.Context, cmd []string, opt *goredis.Options, key string, clients, n int) (StoreBaseline, error) {
	if len(cmd) == 0 {
		return StoreBaseline{}, errors.New("bench: redis-benchmark not found (Debian's redis-tools ships it; scripts/stack.sh install redis unpacks it)")
	}
	c := exec.CommandContext(ctx, cmd[0], redisBenchmarkArgs(cmd[1:], opt, key, clients, n)...)
	if opt.Password != "" {
		c.Env = append(c.Environ(), "REDISCLI_AUTH="+opt.Password)
	}
	out, err := c.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return StoreBaseline{}, fmt.Errorf("bench: redis-benchmark: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return StoreBaseline{}, fmt.Errorf("bench: redis-benchmark: %w", err)
	}
	return parseRedisBenchmark(out, clients)
}

// redisBenchmarkArgs is the arguments of redis-benchmark, after lead (the leading arguments
// of its command), for RedisBenchmark: TLS when opt has a TLSConfig (a rediss:// URL). The
// password is not among them: it goes in the environment.
func redisBenchmarkArgs(lead []string, opt *goredis.Options, key string, clients, n int) []string {
	host, port, ok := strings.Cut(opt.Addr, ":")
	if !ok {
		port = "6379"
	}
	args := append(slices.Clone(lead), "-h", host, "-p", port, "--dbnum", strconv.Itoa(opt.DB),
		"-c", strconv.Itoa(clients), "-n", strconv.Itoa(n), "--csv")
	if opt.Username != "" {
		args = append(args, "--user", opt.Username)
	}
	// A rediss:// URL: TLS, verified against the system's roots as go-redis does.
	if tc := opt.TLSConfig; tc != nil {
		args = append(args, "--tls")
		if tc.ServerName != "" {
			args = append(args, "--sni", tc.ServerName)
		}
		if tc.InsecureSkipVerify {
			args = append(args, "--insecure")
		}
	}
	return append(args, "XADD", key, "*", "data", benchkit.AppendPayload)
}

// parseRedisBenchmark reads redis-benchmark's --csv output: a header and one row per test,
// with rps and the latency percentiles in milliseconds. The row's first field, the command, is
// not escaped (quotes in the command's arguments stay as they are), so the figures are read
// from the end of the row, the header's names after the first field.
func parseRedisBenchmark(out []byte, clients int) (StoreBaseline, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		return StoreBaseline{}, fmt.Errorf("bench: redis-benchmark printed no figures: %q", out)
	}
	header := strings.Split(lines[0], ",")
	row := strings.Split(lines[len(lines)-1], ",")
	if len(header) < 2 || len(row) < len(header) {
		return StoreBaseline{}, fmt.Errorf("bench: redis-benchmark printed no figures: %q", out)
	}
	values := map[string]string{}
	for i, h := range header[1:] {
		values[strings.Trim(h, `"`)] = strings.Trim(row[len(row)-len(header)+1+i], `"`)
	}
	num := func(name string) (float64, error) {
		v, ok := values[name]
		if !ok {
			return 0, fmt.Errorf("bench: redis-benchmark printed no %s", name)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: redis-benchmark's %s: %w", name, err)
		}
		return f, nil
	}
	b := StoreBaseline{Clients: clients}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	var err error
	if b.OpsPerSec, err = num("rps"); err != nil {
		return b, err
	}
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{"p50_latency_ms", &b.Latency.P50}, {"p99_latency_ms", &b.Latency.P99}, {"max_latency_ms", &b.Latency.Max}} {
		v, err := num(p.name)
		if err != nil {
			return b, err
		}
		*p.dst = ms(v)
	}
	return b, nil
}

// ---------------------------------------------------------------- MongoDB

func (r *runner) mongoStore(ctx context.Context) error {
	client, err := mongo.Connect(options.Client().ApplyURI(r.opts.MongoURI).SetTimeout(time.Minute))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer client.Disconnect(context.Background())
	if err := client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var dbs []*mongo.Database
	db := func(suffix string) *mongo.Database {
		d := client.Database(r.id + "_" + suffix)
		dbs = append(dbs, d)
		return d
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, d := range dbs {
			if err := d.Drop(cctx); err != nil {
				r.say("could not drop the MongoDB database %s: %v", d.Name(), err)
			}
		}
	}()
	run := StoreRun{Store: "mongodb", BaselineTool: "the driver's insertOne, majority and journaled"}
	base := db("mongo_baseline").Collection("inserts", options.Collection().
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: ptr(true)}))
	for _, c := range StoreClients {
		r.say("mongodb: insertOne of an event-sized document, %d client(s), %v", c, r.set.AppendTime)
		t, err := MongoInserts(ctx, base, c, r.set.AppendTime)
		if err != nil {
			return err
		}
		r.say("mongodb: %.0f inserts/s, p50 %.2f ms, p99 %.2f ms", t.EventsPerSec, benchkit.Ms(t.Latency.P50), benchkit.Ms(t.Latency.P99))
		run.Baseline = append(run.Baseline, StoreBaseline{Clients: c, OpsPerSec: t.EventsPerSec, Latency: t.Latency})
	}
	store, err := mongodb.New(ctx, db("mongo_appends"), mongodb.Options{})
	if err != nil {
		return err
	}
	if run.Appends, err = r.storeAppends(ctx, "mongodb", store); err != nil {
		return err
	}
	if run.Relay, err = r.mongoRelay(ctx, db("mongo_relay")); err != nil {
		return err
	}
	r.raw.Stores = append(r.raw.Stores, run)
	return nil
}

// MongoInserts inserts event-sized documents into coll, one insertOne per round trip, from
// clients goroutines for d: MongoDB's own write rate, as the store's appends see it.
func MongoInserts(ctx context.Context, coll *mongo.Collection, clients int, d time.Duration) (benchkit.Throughput, error) {
	return benchkit.RunClosed(ctx, benchkit.Closed{Concurrency: clients, Duration: d}, func() func(context.Context) error {
		stream := fmt.Sprintf("order-%d", time.Now().UnixNano())
		return func(ctx context.Context) error {
			_, err := coll.InsertOne(ctx, bson.D{{Key: "stream", Value: stream}, {Key: "data", Value: benchkit.AppendPayload}})
			return err
		}
	})
}

// storeOutbox is another store's outbox, as its relay drains it.
type storeOutbox interface {
	relay.Outbox
	benchkit.Backlog
}

// storeRelay fills s's outbox with the run's mix of streams, then drains it with a relay
// started cold, as the PostgreSQL relay's figure is measured, to topics of the run's own.
func (r *runner) storeRelay(ctx context.Context, name string, s events.Appender, box storeOutbox) (RelayRun, error) {
	streams, err := benchkit.Mix(r.storeEvents(), 3)
	if err != nil {
		return RelayRun{}, err
	}
	total := benchkit.Count(streams)
	r.say("%s: filling the outbox with %d events of %d streams", name, total, len(streams))
	if err := benchkit.Fill(ctx, s, streams, 8); err != nil {
		return RelayRun{}, err
	}
	cfg := r.deployment(r.prefix + "-" + name)
	if err := r.createTopics(ctx, wiring.Topics(cfg)); err != nil {
		return RelayRun{}, err
	}
	rc := relay.Config{Brokers: cfg.Kafka.Brokers, TopicPrefix: cfg.Kafka.TopicPrefix, Security: cfg.Kafka.Security(), Logger: r.log}
	signer, err := wiring.Signer(cfg)
	if err != nil {
		return RelayRun{}, err
	}
	if signer != nil {
		rc.Signer = signer
	}
	rl, err := relay.New(box, relay.SchemaEncoder{Catalog: domain.Catalog(), Format: cfg.EventSourcing.Serialization}, rc)
	if err != nil {
		return RelayRun{}, err
	}
	defer rl.Close()
	r.say("%s: relay draining %d events to Kafka (%d partitions, acks=all), started cold", name, total, cfg.Kafka.TopicPartitions)
	var took time.Duration
	err = r.profiled(name+"-relay", func() (err error) {
		took, err = benchkit.RelayDrainOf(ctx, box, rl, 10*time.Minute, r.opts.Progress)
		return err
	})
	if err != nil {
		return RelayRun{}, err
	}
	run := RelayRun{Events: total, Elapsed: took, EventsPerSec: float64(total) / took.Seconds()}
	r.say("%s: relay: %d events in %v: %.0f events/s", name, total, took.Round(time.Millisecond), run.EventsPerSec)
	return run, nil
}

func (r *runner) redisRelay(ctx context.Context, rdb *goredis.Client, prefix string) (RelayRun, error) {
	s := redis.New(rdb, redis.Options{Prefix: prefix})
	return r.storeRelay(ctx, "redis", s, s.Outbox())
}

func (r *runner) mongoRelay(ctx context.Context, db *mongo.Database) (RelayRun, error) {
	s, err := mongodb.New(ctx, db, mongodb.Options{})
	if err != nil {
		return RelayRun{}, err
	}
	return r.storeRelay(ctx, "mongodb", s, s.Outbox())
}

func ptr[T any](v T) *T { return &v }

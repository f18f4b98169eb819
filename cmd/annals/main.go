// Command annals is the administration tool of an Annals deployment.
//
// Usage:
//
//	annals [-config file] <command> [arguments]
//
// Commands:
//
//	migrate        apply the event store's database migrations, users' data keys included (safe to run concurrently)
//	relay          publish the outbox to Kafka until stopped (the writer also runs one)
//	outbox         the streams the relay holds: holds [-json] (list them and why), retry STREAM...
//	               | -all (try their held append again), skip STREAM -version V -reason WHY
//	               [-by WHO] (give up on the held append, recorded with who and why)
//	fences         the appends whose transaction is still open, which hold the all-stream:
//	               list [-json], end PID (end the backend's session: its transaction rolls back)
//	topics         create the event topics and dead-letter topics (idempotent)
//	projector      the projector's read models: migrate (apply their migrations) or rebuild
//	               (build them anew from the event store and switch to them atomically)
//	load           drive the writer with a realistic mix of commands and report throughput and
//	               latency: load [--url U] [--rate R | --concurrency C] [--duration D] [--json];
//	               it sends $ANNALS_API_KEY as its bearer token
//	bench          measure the whole pipeline against the physical limits of its servers (pgbench,
//	               Kafka's own tools, plain SMTP) in one run and write the table and results.json:
//	               bench [--quick] [--out bench] [--bin DIR] [--pgbench P] [--kafka-libs DIR]
//	               [--cpuprofile DIR]
//	lag            print each consumer group's lag on the event topics per partition, with its
//	               lag in seconds, state, members and status (ok, warn, stall, stop):
//	               lag [--group G] [--watch] [--interval 2s] [--window 10]
//	lag-exporter   serve the consumer lag as Prometheus metrics on /metrics, with /livez and
//	               /readyz: lag-exporter [--addr :9308] [--interval 10s] [--window 10]
//	replay         move a stopped consumer group's offsets back to a time (--group G --since T
//	               [--until T] [--topics a,b] [--dry-run]; T is RFC 3339 or a duration back from now: 2h, 7d);
//	               with --reprocess [--json]: apply the events of [since, until) again to the
//	               projector's read models (the notifier's and auditor's groups are refused)
//	dlq            the streams consumer groups have blocked and their dead letters: list
//	               [--group G] [--stream S] [--limit 20], redrive --group G --stream S [--dry-run]
//	               [--wait 2m] (apply the parked events in order, then release), release --group G
//	               --stream S [--dry-run] (release at once, the parked events left unapplied)
//	audit          the auditor's log: verify [-page-size N] [-json] [-checkpoints FILE [-public-key FILE]
//	               [-max-age D]] (walk the hash chain and report the first broken entry, and check it
//	               holds every signed checkpoint of FILE; exit 1 when broken), keygen [-key FILE]
//	               [-public-key FILE] (a new key pair for the checkpoints) or migrate [-member USER]
//	               (apply its migrations and grants)
//	probe URL      GET URL and exit 0 on a 2xx answer (container health checks)
//	version        print the version
//
// Configuration comes from config/event_sourcing.tsk and the environment, as for the services.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

const usage = `usage: annals [-config file] <command> [arguments]

commands:
  migrate        apply the event store's database migrations, users' data keys included (safe to run concurrently)
  relay          publish the outbox to Kafka until stopped (the writer also runs one)
  outbox         the streams the relay holds because it cannot publish one of their appends:
                 outbox holds [-json] (list them, with why), outbox retry STREAM... | -all
                 (once the cause is fixed: try the held append again), outbox skip STREAM
                 -version V -reason WHY [-by WHO] (give up on the held append for good,
                 recorded with who and why; the stream's later appends are then published)
  fences         the appends whose transaction is still open: each holds the all-stream
                 (GET /v1/events, GET /v1/subscribe) below its position until it ends:
                 fences list [-json] (their backend, position, state and age), fences end PID
                 (end the backend's session: its transaction rolls back, its appends with it)
  topics         create the event topics and dead-letter topics (idempotent)
  projector      the projector's read models: projector migrate (apply their migrations),
                 projector rebuild [-batch-size N] (build them anew from the event store while
                 the projector keeps serving, then switch to them atomically)
  load           drive the writer with a realistic mix of commands and report throughput,
                 latency percentiles and errors by code: load [--url http://127.0.0.1:8080]
                 [--rate R (open loop) | --concurrency C (closed loop)] [--duration 10s] [--json];
                 sends $ANNALS_API_KEY (a key with the commands scope) as its bearer token
  bench          measure the whole pipeline against the physical limits of its servers:
                 pgbench, Kafka's ProducerPerformance, ConsumerPerformance and
                 EndToEndLatency, plain SMTP; then appends, commands over HTTP, the relay,
                 the consumers and end-to-end latency, each with its ratio to its baseline:
                 bench [--quick] [--out bench] [--bin DIR (the service programs)]
                 [--pgbench P] [--kafka-libs DIR] [--java java] [--cpuprofile DIR];
                 writes the table to stdout and OUT/results.json (see the README's
                 Benchmarks)
  lag            print each consumer group's lag on the event topics per partition, with its
                 lag in seconds, state, members and status (ok, warn, stall, stop):
                 lag [--group G] [--watch] [--interval 2s] [--window 10]; without --watch a
                 lagging group's status is n/a (the status compares a window of polls)
  lag-exporter   serve the consumer lag as Prometheus metrics on /metrics, with /livez and
                 /readyz: lag-exporter [--addr :9308] [--interval 10s] [--window 10]
  replay         move a stopped consumer group's committed offsets back to a time, so that it
                 receives the events from then on again: replay --group G --since T
                 [--until T] [--topics a,b] [--dry-run]; T is RFC 3339 or a duration back
                 from now (2h, 7d). replay --group projector --since T [--until T]
                 --reprocess [--json] [--dry-run] applies the events of [since, until) again:
                 the read-model rows of the streams with an event in the range are rebuilt
                 from their whole histories in the event store (the projector may keep
                 running), then it prints the events processed, the errors and the duration;
                 the notifier's group is refused (a second email), the auditor's too
                 (duplicate entries in its chain)
  dlq            the streams consumer groups have blocked behind a dead letter, and their
                 dead letters: dlq list [--group G] [--stream S] [--limit 20];
                 dlq redrive --group G --stream S [--dry-run] [--wait 2m] (once the cause is
                 fixed, the running consumer applies the stream's dead-lettered and parked
                 events in order, then releases it); dlq release --group G --stream S
                 [--dry-run] (release at once, leaving those events unapplied); G is a group
                 or projector, notifier, auditor
  audit          the auditor's log: audit verify [-page-size N] [-json] [-checkpoints FILE
                 [-public-key FILE] [-max-age D]] (walk the hash chain and report the first
                 broken entry, and check it holds every signed checkpoint of FILE; exits 1 when
                 it is broken), audit keygen [-key FILE] [-public-key FILE] (a new key pair for
                 the checkpoints), audit migrate [-member USER] (apply its migrations and grants)
  probe URL      GET URL and exit 0 on a 2xx answer (container health checks)
  version        print the version
`

// errUsage marks a command line that does not parse; run prints the usage for it.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("annals", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configFlag := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	loadConfig := func() (*config.Config, error) {
		cfg, err := config.Load(config.ResolvePath(*configFlag, lookupEnv), lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		if err := cfg.CheckFiles(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	var err error
	switch cmd {
	case "migrate":
		err = migrateCmd(ctx, rest, loadConfig, stdout)
	case "relay":
		err = relayCmd(ctx, rest, loadConfig, stderr)
	case "outbox":
		err = outboxCmd(ctx, rest, loadConfig, stdout)
	case "fences":
		err = fencesCmd(ctx, rest, loadConfig, stdout)
	case "topics":
		err = topicsCmd(ctx, rest, loadConfig, stdout)
	case "projector":
		err = projectorCmd(ctx, rest, loadConfig, stdout)
	case "load":
		err = loadCmd(ctx, rest, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, rest, loadConfig, config.ResolvePath(*configFlag, lookupEnv), lookupEnv, stdout, stderr)
	case "lag":
		err = lagCmd(ctx, rest, loadConfig, stdout)
	case "lag-exporter":
		err = lagExporterCmd(ctx, rest, loadConfig, stderr)
	case "replay":
		err = replayCmd(ctx, rest, loadConfig, stdout, stderr)
	case "dlq":
		err = dlqCmd(ctx, rest, loadConfig, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, rest, loadConfig, stdout)
	case "probe":
		err = probeCmd(ctx, rest, stdout)
	case "version":
		fmt.Fprintln(stdout, app.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "annals: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(stderr, "annals %s: %v\n\n%s", cmd, err, usage)
		return 2
	}
	if err != nil {
		// A broker refusing the Kafka settings reads with the settings' names.
		fmt.Fprintf(stderr, "annals %s: %v\n", cmd, config.ExplainKafka(err))
		return 1
	}
	return 0
}

// openDatabase loads the configuration and connects to its event store's database as the
// application name, stopping with the setting at fault named when the server refuses the
// connection's settings (app.CheckPostgres); the caller closes the pool.
// openEventStore opens the event store that EVENT_STORE_TYPE names, on a checked PostgreSQL
// pool (openDatabase) for postgresql only; close releases what it opened.
func openEventStore(ctx context.Context, loadConfig func() (*config.Config, error), name string) (es *wiring.EventStore, close func(), err error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	var pool *pgxpool.Pool
	if cfg.EventSourcing.StoreType == config.StorePostgreSQL {
		if _, pool, err = openDatabase(ctx, func() (*config.Config, error) { return cfg, nil }, name); err != nil {
			return nil, nil, err
		}
	}
	es, err = wiring.OpenEventStore(ctx, cfg, pool, wiring.StoreOptions{})
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, nil, err
	}
	return es, func() {
		es.Close()
		if pool != nil {
			pool.Close()
		}
	}, nil
}

func openDatabase(ctx context.Context, loadConfig func() (*config.Config, error), name string) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	pool, err := app.NewPool(ctx, cfg.EventStore, name)
	if err != nil {
		return nil, nil, err
	}
	if err := app.CheckPostgres(ctx, cfg.EventStore, pool, nil); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return cfg, pool, nil
}

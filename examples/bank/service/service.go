// Package service wires the bank's parts into one program, on the public library only: the
// PostgreSQL event store (pkg/events/postgres) with its migrations, the relay that publishes
// its outbox to Kafka (pkg/relay), the balances projection in a consumer group (pkg/consume),
// and the HTTP API (httpapi) with /livez, /readyz and /metrics. cmd/bankd runs it; tests start
// it in-process on ":0".
//
// It holds no logic of its own beyond choosing and connecting parts, and it must never import
// anything under the module's internal/ or services/ folders.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
	"github.com/sourcegraph/conc/pool"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/examples/bank/balances"
	"github.com/annals-dev/annals/examples/bank/httpapi"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// Service is the running program.
type Service struct {
	cfg   Config
	db    *pgxpool.Pool
	addr  net.Addr
	tasks *pool.ContextPool
}

// Start prepares the database and the topics, then starts the relay, the balances consumer
// and the HTTP API, which run until ctx ends or one of them fails; Wait waits for that.
// Preparing means: create the schema, apply the event store's and the read model's
// migrations, register the event schemas in the catalog table, and create the topics.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db}
	if err := s.start(ctx, log); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// connect opens a pool whose sessions use the bank's schema, creating it when missing.
func connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvDatabaseURL, err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	db, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if _, err := db.Exec(ctx, "create schema if not exists "+pgx.Identifier{cfg.Schema}.Sanitize()); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema %s: %w", cfg.Schema, err)
	}
	return db, nil
}

// Topics are the topics the service publishes to: the account events and the balances
// group's dead letters.
func (c Config) Topics() []relay.Topic {
	c.setDefaults()
	return []relay.Topic{
		{Name: c.eventTopic(), Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor},
		{Name: c.dlqTopic(), Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor},
	}
}

func (c Config) eventTopic() string { return kafkawire.Topic(c.TopicPrefix, bank.Category) }
func (c Config) dlqTopic() string   { return kafkawire.DeadLetterTopic(c.TopicPrefix, c.group()) }

func (s *Service) start(ctx context.Context, log *slog.Logger) error {
	cfg, db := s.cfg, s.db
	if _, err := postgres.Migrate(ctx, db, log); err != nil {
		return err
	}
	if err := balances.Migrate(ctx, db, log); err != nil {
		return err
	}
	if err := bank.Catalog().Register(ctx, db); err != nil {
		return err
	}
	// Settings the brokers refuse stop the service here, naming the setting at fault.
	if err := explainKafka(kafkasec.Probe(ctx, cfg.Brokers, cfg.Kafka)); err != nil {
		var refused *kafkasec.Error
		if errors.As(err, &refused) {
			return err
		}
		log.Warn("bank: the brokers cannot be reached yet", "error", err)
	}
	if err := relay.EnsureTopicsWith(ctx, cfg.Brokers, cfg.Kafka, cfg.Topics(), io.Discard); err != nil {
		return explainKafka(err)
	}
	reg := prometheus.NewRegistry()
	r, err := newRelay(db, cfg, log, reg)
	if err != nil {
		return err
	}
	store := postgres.New(db, postgres.Options{OnAppend: r.Wake, Metrics: postgres.NewMetrics(reg)})
	accounts := &events.Repository[bank.AccountState]{
		Store: store, Def: bank.Account, SnapshotEvery: max(cfg.SnapshotEvery, 0),
		SnapshotErrors: func(err error) { log.Warn("bank: snapshot failed", "error", err) },
	}
	projection := balances.New(db, cfg.group())
	consumer, err := projection.Consumer(consume.Config{
		Brokers:  cfg.Brokers,
		Topics:   []string{cfg.eventTopic()},
		DLQTopic: cfg.dlqTopic(),
		Decode:   consume.SchemaDecoder(bank.Catalog()),
		Security: cfg.Kafka,
		Logger:   log,
		Metrics:  consume.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	httpapi.New(accounts, projection, log).Register(mux)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	s.addr = ln.Addr()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	s.tasks = pool.New().WithContext(ctx).WithCancelOnError().WithFirstError()
	s.tasks.Go(func(ctx context.Context) error {
		defer r.Close()
		return explainKafka(r.Run(ctx))
	})
	s.tasks.Go(func(ctx context.Context) error { return explainKafka(consumer.Run(ctx)) })
	s.tasks.Go(func(ctx context.Context) error { return serve(ctx, srv, ln) })
	log.Info("bank: started", "addr", s.addr.String(), "schema", cfg.Schema, "topic", cfg.eventTopic(), "group", cfg.group())
	return nil
}

// serve serves HTTP on ln until ctx ends, then shuts the server down gracefully.
func serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// ready answers 204 when PostgreSQL and Kafka answer, else 503 naming the first that does
// not.
func (s *Service) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		http.Error(w, "postgres: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	transport, release, err := s.cfg.Kafka.RoundTripper()
	if err != nil {
		http.Error(w, "kafka: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer release()
	client := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Timeout: 2 * time.Second, Transport: transport}
	if _, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.eventTopic()}}); err != nil {
		http.Error(w, "kafka: "+explainKafka(kafkasec.Classify(err, s.cfg.Kafka)).Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// explainKafka names the environment variables at fault in a broker's refusal
// (kafkasec.Error.Describe); other errors are returned unchanged.
func explainKafka(err error) error {
	var refused *kafkasec.Error
	if errors.As(err, &refused) {
		return kafkaRefusal{refused}
	}
	return err
}

// kafkaRefusal is a broker's refusal that reads with the names of the environment variables.
type kafkaRefusal struct{ err *kafkasec.Error }

func (r kafkaRefusal) Error() string { return r.err.Describe(kafkaSetting) }
func (r kafkaRefusal) Unwrap() error { return r.err }

// Addr is the address the HTTP API listens on.
func (s *Service) Addr() string { return s.addr.String() }

// Pool is the service's connection pool, whose sessions use the bank's schema.
func (s *Service) Pool() *pgxpool.Pool { return s.db }

// Wait waits until the service has stopped (its context ended, or a part failed and stopped
// the others), closes the database pool and returns the first failure.
func (s *Service) Wait() error {
	err := s.tasks.Wait()
	s.db.Close()
	return err
}

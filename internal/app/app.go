// Package app is the process frame every Annals service runs in: it loads the configuration,
// builds the JSON logger, the Prometheus registry, the PostgreSQL pool and the Kafka readiness
// check, installs OpenTelemetry's SDK when tracing is configured (internal/telemetry), serves
// /livez, /readyz, /metrics and /openapi.json next to the service's own routes, and shuts
// everything down in order when its context ends (SIGINT or SIGTERM in main).
//
// At start it connects to the Kafka brokers once with the service's security settings
// (CheckKafka): a broker that refuses them stops the service at once with one error that names
// the setting at fault, and so does a component that a broker refuses later (an ACL it lacks).
// Brokers that cannot be reached are an outage, which the service waits out.
//
// A service's main only names the service and wires its parts onto a Main. Main never logs a
// secret: configuration secrets are redacted types, and connection strings are never printed.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/telemetry"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/logctx"
)

// Service names one of the four services and its default HTTP port.
type Service struct {
	Name        string // writer, projector, notifier, auditor
	DefaultPort int
	// ReadyWithoutKafka leaves Kafka out of /readyz, which reports it instead (AddReport):
	// the writer accepts commands while the brokers are away, its outbox keeping them.
	ReadyWithoutKafka bool
}

// The four services and the ports they listen on unless HTTP_ADDR says otherwise.
var (
	Writer    = Service{Name: "writer", DefaultPort: 8080, ReadyWithoutKafka: true}
	Projector = Service{Name: "projector", DefaultPort: 8081}
	Notifier  = Service{Name: "notifier", DefaultPort: 8082}
	Auditor   = Service{Name: "auditor", DefaultPort: 8083}
)

// Services lists every service, in the order the pipeline runs them.
func Services() []Service { return []Service{Writer, Projector, Notifier, Auditor} }

// Version is the build's version, set with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// Main is one running service process. Fields are ready after Open.
type Main struct {
	Service Service
	Config  *config.Config
	Logger  *slog.Logger
	// Registry holds the service's metrics; /metrics serves it.
	Registry *prometheus.Registry
	// DB is the PostgreSQL pool; it connects lazily, so a service starts while the database is
	// still coming up and /readyz reports it.
	DB *pgxpool.Pool
	// Router serves the service's routes next to the standard ones.
	Router *httpx.Router

	configPath string
	policy     auth.Policy
	security   httpx.Security // what /openapi.json says of policy, set by Run
	server     *http.Server
	listener   net.Listener
	checks     []Check
	reports    []Report
	workers    []worker
	tracing    *telemetry.Tracing // nil while tracing is off
	closers    []func()
	closeOnce  sync.Once
}

type worker struct {
	name string
	run  func(ctx context.Context) error
}

// Go adds a background component (the relay, a consumer group, a pruner) that Run starts
// next to the HTTP server. It must return when its context ends; an error ends the service,
// like a failing component of a run group.
func (m *Main) Go(name string, run func(ctx context.Context) error) {
	m.workers = append(m.workers, worker{name: name, run: run})
}

// Check is one dependency that /readyz probes.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Report is a part of a service, or a dependency, whose health /readyz shows without
// depending on it, and GET /healthz/<name> serves on its own.
type Report struct {
	Name string
	// Func returns what to show (a value that encodes to JSON) and whether it is healthy.
	Func func(ctx context.Context) (status any, ok bool)
}

// New parses the command line (-config, -addr), loads the configuration from the file and the
// environment, and builds the logger. Nothing is opened yet.
func New(svc Service, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*Main, error) {
	fs := flag.NewFlagSet("annals-"+svc.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFlag := fs.String("config", "", "configuration file (default $ANNALS_CONFIG, else "+config.DefaultPath+" when present)")
	addrFlag := fs.String("addr", "", "HTTP listen address (overrides HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	path := config.ResolvePath(*configFlag, lookupEnv)
	cfg, err := config.Load(path, lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if err := cfg.CheckFiles(); err != nil {
		return nil, err
	}
	if *addrFlag != "" {
		cfg.HTTP.Addr = *addrFlag
	}
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = ":" + strconv.Itoa(svc.DefaultPort)
	}
	return &Main{
		Service:    svc,
		Config:     cfg,
		Logger:     NewLogger(cfg.Log, stderr).With("service", svc.Name),
		configPath: path,
	}, nil
}

// NewLogger builds the slog logger that the configuration asks for.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config.Load
	opts := &slog.HandlerOptions{Level: level}
	// logctx adds what the context carries: the correlation id of a request, the event id
	// and correlation id of a message being handled; telemetry the trace and span ids of a
	// request or message being traced.
	if c.Format == "text" {
		return slog.New(telemetry.LogHandler(logctx.Handler(slog.NewTextHandler(w, opts))))
	}
	return slog.New(telemetry.LogHandler(logctx.Handler(slog.NewJSONHandler(w, opts))))
}

// Open installs OpenTelemetry's SDK when tracing is configured (OTEL_EXPORTER_OTLP_ENDPOINT;
// internal/telemetry), creates the registry, the pool, the readiness checks and the router
// with the standard routes, checks PostgreSQL's answer to the connection's settings
// (CheckPostgres) and the Kafka brokers' answer to the service's security settings
// (CheckKafka), and binds the listener (so that a port in use fails here, with its address).
func (m *Main) Open(ctx context.Context) error {
	t, err := telemetry.New(ctx, m.Config.Monitoring, m.Service.Name, Version)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if t != nil {
		t.Install(m.Logger)
		m.tracing = t
	}
	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "annals_service_info",
		Help:        "Constant 1, labelled with the service name and version.",
		ConstLabels: prometheus.Labels{"service": m.Service.Name, "version": Version},
	})
	info.Set(1)
	m.Registry.MustRegister(info)

	if m.DB, err = NewPool(ctx, m.Config.EventStore, "annals-"+m.Service.Name); err != nil {
		return err
	}
	if err := CheckPostgres(ctx, m.Config.EventStore, m.DB, m.Logger); err != nil {
		m.DB.Close()
		m.DB = nil
		return err
	}

	if err := CheckKafka(ctx, m.Config.Kafka, m.Logger); err != nil {
		m.DB.Close()
		m.DB = nil
		return err
	}
	kafkaCheck := func(ctx context.Context) error { return KafkaReachable(ctx, m.Config.Kafka) }
	m.AddCheck("postgres", func(ctx context.Context) error { return m.DB.Ping(ctx) })
	readiness := "Readiness: PostgreSQL and Kafka are reachable."
	if !m.Service.ReadyWithoutKafka {
		m.AddCheck("kafka", kafkaCheck)
	} else {
		readiness = "Readiness: PostgreSQL is reachable. Kafka and the other reports are shown beside the checks; the service is ready whatever they say."
	}

	m.Router = httpx.NewRouter()
	// The standard routes need no credentials: probes and scrapers carry none, and none of
	// them shows an event, a name or an email (see Authentication in the README).
	m.policy = auth.Policy{"GET /livez": auth.Public, "GET /readyz": auth.Public, "GET /metrics": auth.Public, "GET /openapi.json": auth.Public}
	m.Router.HandleFunc("GET", "/livez", httpx.Operation{Summary: "Liveness: the process serves HTTP. Checks no dependency.", Tags: []string{"health"}}, m.livez)
	m.Router.HandleFunc("GET", "/readyz", httpx.Operation{Summary: readiness, Tags: []string{"health"},
		Responses: map[int]string{200: "ready", 503: "a dependency is unreachable"}}, m.readyz)
	if m.Service.ReadyWithoutKafka {
		m.AddReport("kafka", func(ctx context.Context) (any, bool) {
			if err := kafkaCheck(ctx); err != nil {
				return err.Error(), false
			}
			return "ok", true
		})
	}
	// EVENT_SOURCING_METRICS_ENABLED=false leaves /metrics out; the collectors still run, so
	// that the code that records needs no switch of its own.
	if mon := m.Config.Monitoring; mon.MetricsEnabled {
		g := exported(m.Registry, mon.PerformanceMonitoring, mon.EventTracking)
		m.Router.Handle("GET", "/metrics", httpx.Operation{Summary: "Prometheus metrics.", Tags: []string{"metrics"}},
			promhttp.InstrumentMetricHandler(m.Registry, promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: m.Registry})))
	}
	m.Router.HandleFunc("GET", "/openapi.json", httpx.Operation{Summary: "This document.", Tags: []string{"meta"}}, m.openapi)

	ln, err := net.Listen("tcp", m.Config.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set HTTP_ADDR or -addr to change it): %w", m.Config.HTTP.Addr, err)
	}
	m.listener = ln
	return nil
}

// AddCheck adds a dependency to /readyz.
func (m *Main) AddCheck(name string, fn func(ctx context.Context) error) {
	m.checks = append(m.checks, Check{Name: name, Func: fn})
}

// AddReport adds a report to /readyz's body, under name, and serves it at GET /healthz/<name>:
// 200 while it is healthy, 503 otherwise. Readiness does not depend on it. Open must have
// run; name must not be status, checks or error.
func (m *Main) AddReport(name string, fn func(ctx context.Context) (status any, ok bool)) {
	switch name {
	case "status", "checks", "error":
		panic("app: a report may not be named " + name)
	}
	m.reports = append(m.reports, Report{Name: name, Func: fn})
	m.policy["GET /healthz/"+name] = auth.Public
	m.Router.HandleFunc("GET", "/healthz/"+name, httpx.Operation{Summary: "The health of " + name + ", which readiness does not depend on.",
		Tags: []string{"health"}, Responses: map[int]string{200: "healthy", 503: "not healthy"}},
		func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			status, ok := fn(ctx)
			code := http.StatusOK
			if !ok {
				code = http.StatusServiceUnavailable
			}
			httpx.WriteJSON(w, code, status)
		})
}

// Protect gives the service's routes their scopes (see internal/auth): every route the
// service registers on Router must be in a Policy, or Run refuses to start.
func (m *Main) Protect(p auth.Policy) {
	maps.Copy(m.policy, p)
}

// authenticate builds the authenticator of the [auth] section and wraps h with it, after
// checking that every route has a policy; /openapi.json then declares what it enforces.
func (m *Main) authenticate(ctx context.Context, h http.Handler) (http.Handler, error) {
	for _, route := range m.Router.Routes() {
		if _, ok := m.policy[route]; !ok {
			return nil, fmt.Errorf("route %s has no scope (app.Main.Protect)", route)
		}
	}
	c := m.Config.Auth
	keys, err := auth.ParseAPIKeys(c.APIKeys.Reveal())
	if err != nil {
		return nil, fmt.Errorf("configuration: API_KEYS: %w", err)
	}
	a, err := auth.New(ctx, auth.Config{
		Disabled: c.Disabled,
		APIKeys:  keys,
		OIDC: auth.OIDC{Issuer: c.OIDCIssuer, Audience: c.OIDCAudience, JWKSURL: c.OIDCJWKSURL,
			Algorithms: c.OIDCAlgorithms, ScopesClaim: c.OIDCScopesClaim},
		Registerer: m.Registry,
		Logger:     m.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	switch {
	case c.Disabled:
		m.Logger.Warn("authentication is OFF (AUTH_DISABLED=true): whoever reaches this port may do anything; for local experiments only")
	case !a.Accepts():
		m.Logger.Warn("no API key (API_KEYS) and no token issuer (OIDC_ISSUER) is configured: every route but the public ones answers 401")
	default:
		m.Logger.Info("authentication", "api_keys", len(keys), "oidc_issuer", c.OIDCIssuer)
	}
	m.security = a.Security(m.policy)
	return a.Middleware(h, m.Router.Pattern, m.policy), nil
}

// Addr is the address the HTTP server listens on (useful with port 0).
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves HTTP until ctx ends, then shuts down gracefully within SHUTDOWN_TIMEOUT.
func (m *Main) Run(ctx context.Context) error {
	metrics := httpx.NewMetrics(m.Registry)
	authed, err := m.authenticate(ctx, m.Router)
	if err != nil {
		return err
	}
	var handler http.Handler = httpx.Middleware(authed, metrics, m.Logger)
	if m.Config.Monitoring.PprofEnabled {
		handler = withPprof(handler)
	}
	m.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.Logger.Info("started", "addr", m.Addr(), "config", m.configPath, "version", Version,
		"kafka_brokers", strings.Join(m.Config.Kafka.Brokers, ","))
	errc := make(chan error, 1+len(m.workers))
	go func() { errc <- m.server.Serve(m.listener) }()
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var wg sync.WaitGroup
	for _, w := range m.workers {
		wg.Go(func() {
			if err := w.run(wctx); err != nil && wctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", w.name, config.ExplainKafka(err))
			}
		})
	}
	var failed error
	select {
	case failed = <-errc:
		m.Logger.Error("stopping", "error", failed)
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down", "timeout", m.Config.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.HTTP.ShutdownTimeout)
	defer cancel()
	if err := m.server.Shutdown(sctx); err != nil && failed == nil {
		failed = fmt.Errorf("http shutdown: %w", err)
	}
	stopWorkers()
	wg.Wait()
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		return failed
	}
	return nil
}

// OnClose adds fn to what Close releases, before the pool: a connection a service's wiring
// opened, for example. Close calls them in the reverse of their order.
func (m *Main) OnClose(fn func()) {
	m.closers = append(m.closers, fn)
}

// Close releases what Open acquired. It is safe to call more than once.
func (m *Main) Close() {
	m.closeOnce.Do(func() {
		if m.listener != nil && m.server == nil {
			_ = m.listener.Close()
		}
		for i := len(m.closers) - 1; i >= 0; i-- {
			m.closers[i]()
		}
		if m.DB != nil {
			m.DB.Close()
		}
		if m.tracing != nil {
			// The spans still queued, within a bound: a receiver that is away holds up the
			// exit no longer than this.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := m.tracing.Shutdown(ctx); err != nil && m.Logger != nil {
				m.Logger.Warn("tracing: spans not sent at shutdown", "error", err)
			}
			cancel()
		}
		if m.Logger != nil {
			m.Logger.Info("stopped")
		}
	})
}

func (m *Main) livez(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every check and report concurrently, each with a short deadline.
func (m *Main) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	results := make(map[string]string, len(m.checks))
	reports := make(map[string]any, len(m.reports))
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := false
	for _, rep := range m.reports {
		wg.Go(func() {
			status, _ := rep.Func(ctx)
			mu.Lock()
			defer mu.Unlock()
			reports[rep.Name] = status
		})
	}
	for _, c := range m.checks {
		wg.Go(func() {
			status := "ok"
			if err := c.Func(ctx); err != nil {
				status = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			results[c.Name] = status
			if status != "ok" {
				failed = true
			}
		})
	}
	wg.Wait()
	if failed {
		fields := map[string]any{"checks": results}
		maps.Copy(fields, reports)
		httpx.WriteErrorFields(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, "a dependency is unreachable", fields)
		return
	}
	body := map[string]any{"status": "ok", "checks": results}
	maps.Copy(body, reports)
	httpx.WriteJSON(w, http.StatusOK, body)
}

func (m *Main) openapi(w http.ResponseWriter, _ *http.Request) {
	doc := m.Router.OpenAPIWith("annals-"+m.Service.Name, Version, m.security)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// KafkaReachable connects to the brokers of c with its security settings, the way the
// clients do, and asks the first that answers for the cluster's metadata (kafkasec.Probe). A
// broker that refuses the settings is an error that names the setting at fault and what it
// expected (config.ExplainKafka), so that /readyz says why.
func KafkaReachable(ctx context.Context, c config.Kafka) error {
	if len(c.Brokers) == 0 {
		return errors.New("no Kafka brokers configured (KAFKA_BROKERS)")
	}
	return config.ExplainKafka(kafkasec.Probe(ctx, c.Brokers, c.Security()))
}

// CheckKafka connects to the brokers of c once, at start, with its security settings
// (kafkasec.Probe), within a few seconds. A broker that refuses them (SASL credentials or
// mechanism, an untrusted, expired or misnamed certificate, a client certificate, a protocol
// the listener does not speak) is an error naming the setting at fault and what was expected:
// the program stops at once instead of retrying what no retry cures. A refusal read from a
// closed connection only counts when it repeats, since a broker going down looks the same
// once. Brokers that cannot be reached are logged to log (when not nil), and CheckKafka
// returns nil: the program's parts wait for the brokers as they wait through any outage.
func CheckKafka(ctx context.Context, k config.Kafka, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sec := k.Security()
	if sec.Protocol == kafkasec.SASLPlaintext && sec.Mechanism == kafkasec.Plain {
		log.Warn("kafka: KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT with KAFKA_SASL_MECHANISM=PLAIN sends the password in clear text: use SASL_SSL, or SCRAM")
	}
	ctx, cancel := context.WithTimeout(ctx, startupProbe)
	defer cancel()
	for inferred := 0; ; {
		err := kafkasec.Probe(ctx, k.Brokers, sec)
		var refused *kafkasec.Error
		var bad *kafkasec.ConfigError
		switch {
		case err == nil:
			log.Info("kafka: the brokers accept the connection", "kafka_security", sec)
			return nil
		case errors.As(err, &bad):
			return config.ExplainKafka(err)
		case errors.As(err, &refused) && (!refused.Inferred || inferred == 2):
			return config.ExplainKafka(err)
		case errors.As(err, &refused) && ctx.Err() == nil:
			inferred++
			select {
			case <-ctx.Done():
				return config.ExplainKafka(err)
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		log.Warn("kafka: the brokers cannot be reached yet; going on, and waiting for them", "error", err)
		return nil
	}
}

// startupProbe bounds CheckKafka.
const startupProbe = 10 * time.Second

// NewPool builds the PostgreSQL pool that the configuration describes (EVENT_STORE_CONNECTION_POOL
// connections, named application in pg_stat_activity unless the connection string names
// one). It connects lazily.
func NewPool(ctx context.Context, c config.EventStore, application string) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(c.ConnString())
	if err != nil {
		// The pgx error can quote the connection string; say which key is wrong instead.
		return nil, errors.New("configuration: DATABASE_URL / EVENT_STORE_* do not form a valid PostgreSQL connection string")
	}
	poolCfg.MaxConns = int32(c.ConnectionPool)
	if poolCfg.ConnConfig.RuntimeParams["application_name"] == "" { // one in DATABASE_URL wins
		poolCfg.ConnConfig.RuntimeParams["application_name"] = application
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	return pool, nil
}

// RunProgram runs a service as a program: until SIGINT or SIGTERM, then exits, with status 1 and
// the error on stderr if it failed. It is all a service's main function calls.
func RunProgram(svc Service, setup ...func(context.Context, *Main) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Start(ctx, svc, os.Args[1:], setup...)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "annals-%s: %v\n", svc.Name, err)
		os.Exit(1)
	}
}

// Start is the whole life of a service process for main: New, Open, each setup step (the
// service's own wiring), Run until ctx ends, Close.
func Start(ctx context.Context, svc Service, args []string, setup ...func(context.Context, *Main) error) error {
	m, err := New(svc, args, os.LookupEnv, os.Stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		return err
	}
	for _, s := range setup {
		if err := s(ctx, m); err != nil {
			return err
		}
	}
	return m.Run(ctx)
}

// exported is what /metrics serves of g: without performance monitoring
// (EVENT_PERFORMANCE_MONITORING=false) no histogram, without event tracking
// (EVENT_TRACKING_ENABLED=false) no series by event type.
func exported(g prometheus.Gatherer, histograms, byType bool) prometheus.Gatherer {
	if histograms && byType {
		return g
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		out := mfs[:0]
		for _, mf := range mfs {
			if !histograms && mf.GetType() == dto.MetricType_HISTOGRAM {
				continue
			}
			if !byType && len(mf.GetMetric()) > 0 && slices.ContainsFunc(mf.GetMetric()[0].GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "type" }) {
				continue
			}
			out = append(out, mf)
		}
		return out, err
	})
}

// withPprof serves Go's runtime profiles under /debug/pprof/ (PPROF_ENABLED) and everything
// else through h, untouched. The profiles stay out of the router, its metrics and its OpenAPI
// document: they are a diagnosis tool, not part of the service's API.
func withPprof(h http.Handler) http.Handler {
	prof := http.NewServeMux()
	prof.HandleFunc("GET /debug/pprof/", pprof.Index) // the named profiles: heap, goroutine, allocs, block, mutex, ...
	prof.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	prof.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	prof.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	prof.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			prof.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

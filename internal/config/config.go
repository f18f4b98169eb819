package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/annals-dev/annals/pkg/kafkawire"
)

// DefaultPath is the configuration file used when none is named.
const DefaultPath = "config/event_sourcing.tsk"

// PathEnv is the environment variable naming the configuration file.
const PathEnv = "ANNALS_CONFIG"

// Config is the typed configuration, one field per section.
type Config struct {
	EventSourcing EventSourcing `json:"event_sourcing"`
	EventStore    EventStore    `json:"event_store"`
	Projections   Projections   `json:"projections"`
	Aggregates    Aggregates    `json:"aggregates"`
	Handlers      Handlers      `json:"handlers"`
	Monitoring    Monitoring    `json:"monitoring"`
	Kafka         Kafka         `json:"kafka"`
	Relay         Relay         `json:"relay"`
	EventSigning  EventSigning  `json:"event_signing"`
	SMTP          SMTP          `json:"smtp"`
	Notifier      Notifier      `json:"notifier"`
	Auditor       Auditor       `json:"auditor"`
	Auth          Auth          `json:"auth"`
	HTTP          HTTP          `json:"http"`
	Log           Log           `json:"log"`
	Writer        Writer        `json:"writer"`
}

// EventSourcing is the [event_sourcing] section.
type EventSourcing struct {
	Enabled           bool   `json:"enabled"`
	StoreType         string `json:"event_store_type"`
	SnapshotFrequency int    `json:"snapshot_frequency"`
	Serialization     string `json:"event_serialization"`
	// PersonalDataKeyFile is the file of the KEK that wraps users' data keys (pkg/shred);
	// empty: personal data is recorded in clear.
	PersonalDataKeyFile string `json:"personal_data_key_file"`
}

// EventStore is the [event_store] section. URL, when set, wins over the other keys; SSLMode
// (libpq's sslmode) and the SSL files apply to the URL built from the parts (ConnString).
type EventStore struct {
	URL            Secret `json:"url"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	Database       string `json:"database"`
	Username       string `json:"username"`
	Password       Secret `json:"password"`
	ConnectionPool int    `json:"connection_pool"`
	SSLMode        string `json:"sslmode"`
	SSLRootCert    string `json:"sslrootcert"`
	SSLCert        string `json:"sslcert"`
	SSLKey         string `json:"sslkey"`
	// RedisURL and RedisPrefix locate the Redis event store (EVENT_STORE_TYPE=redis).
	RedisURL    Secret `json:"redis_url"`
	RedisPrefix string `json:"redis_prefix"`
	// MongoDBURI and MongoDBDatabase locate the MongoDB event store (EVENT_STORE_TYPE=mongodb).
	MongoDBURI      Secret `json:"mongodb_uri"`
	MongoDBDatabase string `json:"mongodb_database"`
}

// The event store backends of EVENT_STORE_TYPE.
const (
	StorePostgreSQL = "postgresql"
	StoreRedis      = "redis"
	StoreMongoDB    = "mongodb"
)

// Projections is the [projections] section: how the consumer groups batch, retry and
// remember the events they applied (InboxRetention).
type Projections struct {
	Enabled        bool          `json:"enabled"`
	RealTime       bool          `json:"real_time"`
	BatchSize      int           `json:"batch_size"`
	Interval       time.Duration `json:"interval"`
	Parallel       bool          `json:"parallel_processing"`
	RetryAttempts  int           `json:"retry_attempts"`
	InboxRetention time.Duration `json:"inbox_retention"`
}

// Aggregates is the [aggregates] section.
type Aggregates struct {
	SnapshotEnabled       bool          `json:"snapshot_enabled"`
	SnapshotRetention     time.Duration `json:"snapshot_retention"`
	OptimisticConcurrency bool          `json:"optimistic_concurrency"`
	MaxEventsPerAggregate int           `json:"max_events_per_aggregate"`
	MaxEventBytes         int           `json:"max_event_bytes"`
}

// Handlers is the [handlers] section.
type Handlers struct {
	Enabled           bool `json:"enabled"`
	AsyncProcessing   bool `json:"async_processing"`
	ErrorHandling     bool `json:"error_handling"`
	RetryFailedEvents bool `json:"retry_failed_events"`
}

// Monitoring is the [monitoring] section. The lag keys configure the consumer lag exporter:
// whether the writer embeds one, how often it polls the broker and over how many polls it
// judges a group's status. The OTLP and trace keys say where the services send their
// OpenTelemetry traces (internal/telemetry reads them); an empty OTLPEndpoint turns tracing
// off.
type Monitoring struct {
	MetricsEnabled        bool          `json:"metrics_enabled"`
	EventTracking         bool          `json:"event_tracking"`
	PerformanceMonitoring bool          `json:"performance_monitoring"`
	LagExporterEnabled    bool          `json:"lag_exporter_enabled"`
	LagPollInterval       time.Duration `json:"lag_poll_interval"`
	LagStatusWindow       int           `json:"lag_status_window"`
	PprofEnabled          bool          `json:"pprof_enabled"`
	OTLPEndpoint          string        `json:"otlp_endpoint"`
	OTLPProtocol          string        `json:"otlp_protocol"`
	ServiceName           string        `json:"service_name"`
	TracesSampler         string        `json:"traces_sampler"`
	TracesSamplerArg      string        `json:"traces_sampler_arg"`
}

// Kafka is the [kafka] section. SessionTimeout and DrainTimeout are the consumer groups'
// membership timings: a consumer drains its work in flight within DrainTimeout, sending no
// heartbeat meanwhile, so DrainTimeout plus ConsumerHeartbeat must stay below SessionTimeout
// (Validate checks it). CommitInterval is how often, at most, a consumer commits its offsets
// while events keep coming (zero: after every batch). SecurityProtocol and the SASL and TLS
// keys say how the clients connect (Security).
type Kafka struct {
	Brokers           []string      `json:"brokers"`
	TopicPrefix       string        `json:"topic_prefix"`
	TopicPartitions   int           `json:"topic_partitions"`
	ReplicationFactor int           `json:"replication_factor"`
	SessionTimeout    time.Duration `json:"session_timeout"`
	DrainTimeout      time.Duration `json:"consumer_drain_timeout"`
	CommitInterval    time.Duration `json:"consumer_commit_interval"`
	SecurityProtocol  string        `json:"security_protocol"`
	SASLMechanism     string        `json:"sasl_mechanism"`
	SASLUsername      string        `json:"sasl_username"`
	SASLPassword      Secret        `json:"sasl_password"`
	TLSCAFile         string        `json:"tls_ca_file"`
	TLSCertFile       string        `json:"tls_cert_file"`
	TLSKeyFile        string        `json:"tls_key_file"`
}

// Relay is the [relay] section: the outbox relay's (the writer's, and `annals relay`'s).
// MaxReadBytes bounds the event data and metadata of one read of the outbox.
type Relay struct {
	MaxReadBytes int `json:"max_read_bytes"`
}

// EventSigning is the [event_signing] section: the key the relay signs records with (also
// accepted by the consumers), more keys the consumers accept while keys rotate, and whether
// the services insist on signatures (see pkg/signing; internal/wiring builds the signer and
// the verifier).
type EventSigning struct {
	Key          Secret `json:"key"`
	AcceptedKeys Secret `json:"accepted_keys"`
	Required     bool   `json:"required"`
}

// Auth is the [auth] section: who may call the services' HTTP APIs (internal/auth reads it).
// APIKeys holds hashes of keys, never keys, and is a secret all the same.
type Auth struct {
	Disabled        bool     `json:"disabled"`
	APIKeys         Secret   `json:"api_keys"`
	OIDCIssuer      string   `json:"oidc_issuer"`
	OIDCAudience    string   `json:"oidc_audience"`
	OIDCJWKSURL     string   `json:"oidc_jwks_url"`
	OIDCAlgorithms  []string `json:"oidc_algorithms"`
	OIDCScopesClaim string   `json:"oidc_scopes_claim"`
}

// ConsumerHeartbeat is how often the services' consumers tell the broker they are alive.
const ConsumerHeartbeat = time.Second

// SMTP is the [smtp] section. Username and Password, when set, authenticate the notifier
// to the server; StartTLS is "none", "opportunistic" (when the server offers it) or
// "required".
type SMTP struct {
	Addr     string        `json:"addr"`
	From     string        `json:"from"`
	Username string        `json:"username"`
	Password Secret        `json:"password"`
	StartTLS string        `json:"starttls"`
	Timeout  time.Duration `json:"timeout"`
}

// Notifier is the [notifier] section. An empty TemplatesDir means the built-in templates
// only; RateLimit is in emails per second, 0 for no limit.
type Notifier struct {
	TemplatesDir           string        `json:"templates_dir"`
	RateLimit              int           `json:"rate_limit"`
	UserWait               time.Duration `json:"user_wait"`
	EmailsPerPrincipalHour int           `json:"emails_per_principal_hour"`
	// BatchLinger is how long the notifier's batch waits to fill once it has an event.
	BatchLinger time.Duration `json:"batch_linger"`
}

// Auditor is the [auditor] section. VerifyInterval is how often the auditor verifies the
// whole hash chain on its own; 0 turns that off (GET /v1/audit/verify still does it).
// CheckpointKeyFile (empty: none) is the private key that signs a checkpoint of the chain
// every CheckpointInterval, appended to CheckpointFile (empty: logged only);
// CheckpointPublicKeyFile is the public key verifiers check them with. BatchLinger is how
// long the auditor's batch waits to fill once it has an event: the log takes a batch in one
// transaction, so waiting a little at a low rate saves a commit for each event it gathers.
type Auditor struct {
	BatchLinger             time.Duration `json:"batch_linger"`
	VerifyInterval          time.Duration `json:"verify_interval"`
	CheckpointKeyFile       string        `json:"checkpoint_key_file"`
	CheckpointFile          string        `json:"checkpoint_file"`
	CheckpointInterval      time.Duration `json:"checkpoint_interval"`
	CheckpointPublicKeyFile string        `json:"checkpoint_public_key_file"`
}

// HTTP is the [http] section. An empty Addr means the service's own
// default port.
type HTTP struct {
	Addr            string        `json:"addr"`
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
}

// Log is the [log] section.
type Log struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// Writer is the [writer] section. CommandRateLimit is the commands per second a principal may
// send to one writer process (0: no limit), CommandRateBurst how many at once (0: as many as
// CommandRateLimit). The Feed settings bound the live feed, GET /v1/subscribe: the heartbeat of
// an idle stream, the events a subscriber may fall behind before it is dropped, and the
// subscribers at once.
type Writer struct {
	MigrateOnStart        bool          `json:"migrate_on_start"`
	CommandRateLimit      int           `json:"command_rate_limit"`
	CommandRateBurst      int           `json:"command_rate_burst"`
	FeedHeartbeatInterval time.Duration `json:"feed_heartbeat_interval"`
	FeedBuffer            int           `json:"feed_buffer"`
	FeedMaxSubscribers    int           `json:"feed_max_subscribers"`
}

// Default returns the configuration made of the schema defaults.
func Default() *Config {
	c := &Config{}
	for i := range specs {
		s := &specs[i]
		v, msg := parseRaw(s, s.Default, false)
		if msg != "" {
			panic("config: bad default for " + s.Path() + ": " + msg)
		}
		store(s, c, v)
	}
	return c
}

// Load reads the configuration file at path (none when path is "") and
// the environment through lookupEnv (nil means an empty environment).
//
// For each key the environment variable wins (for a key written as
// @env("X", ...) in the file the variable is X, otherwise the schema's),
// then the file's literal or @env default, then the schema default. A
// missing file, a syntax error, an unknown section or key and every value
// that does not parse or fit are errors; all of them are returned at once,
// joined. Load then runs Validate.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	var errs []error
	inFile := map[*spec]Entry{}
	if path != "" {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		f, err := Parse(path, src)
		if err != nil {
			return nil, err
		}
		known := sectionNames()
		for _, sec := range f.Sections {
			if !contains(known, sec.Name) {
				errs = append(errs, fmt.Errorf("%s:%d: unknown section [%s]; known sections: %s",
					path, sec.Line, sec.Name, strings.Join(known, ", ")))
				continue
			}
			for _, e := range sec.Entries {
				s, ok := lookupSpec(sec.Name, e.Key)
				if !ok {
					errs = append(errs, fmt.Errorf("%s:%d: unknown key %q in [%s]; known keys: %s",
						path, e.Line, e.Key, sec.Name, strings.Join(keyNames(sec.Name), ", ")))
					continue
				}
				inFile[s] = e
			}
		}
	}

	c := &Config{}
	for i := range specs {
		s := &specs[i]
		env, raw, where, hide := s.Env, s.Default, "", s.Secure
		if e, ok := inFile[s]; ok {
			fromFile := true
			switch {
			case e.Env == nil:
				raw = e.Literal
			case e.Env.HasDefault:
				env, raw = e.Env.Name, e.Env.Default
			default:
				env, fromFile = e.Env.Name, false
			}
			if e.Env != nil && e.Env.Secure {
				hide = true
			}
			if fromFile {
				where = fmt.Sprintf("%s:%d: ", path, e.Line)
			}
		}
		if v, ok := lookupEnv(env); ok {
			raw, where = v, ""
		}
		v, msg := parseRaw(s, raw, hide)
		if msg == "" {
			msg = checkValue(s, v, hide)
		}
		if msg != "" {
			errs = append(errs, fmt.Errorf("%s%s (%s): %s", where, env, s.Path(), msg))
			continue
		}
		store(s, c, v)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every value of c (ranges, allowed values, formats) and
// the rules that span keys. It returns all problems, joined.
func (c *Config) Validate() error {
	var errs []error
	for i := range specs {
		s := &specs[i]
		if msg := checkValue(s, load(s, c), s.Secure); msg != "" {
			errs = append(errs, fmt.Errorf("%s (%s): %s", s.Env, s.Path(), msg))
		}
	}
	if c.SMTP.Password != "" && c.SMTP.Username == "" {
		errs = append(errs, errors.New("SMTP_PASSWORD (smtp.password): set, but SMTP_USERNAME (smtp.username) is empty"))
	}
	if c.Kafka.SessionTimeout > 0 && c.Kafka.DrainTimeout > 0 && c.Kafka.DrainTimeout+ConsumerHeartbeat >= c.Kafka.SessionTimeout {
		errs = append(errs, fmt.Errorf("CONSUMER_DRAIN_TIMEOUT (kafka.consumer_drain_timeout) %s must be shorter than KAFKA_SESSION_TIMEOUT (kafka.session_timeout) %s "+
			"minus the consumers' heartbeat interval (%s): a consumer still finishing its events after a rebalance would be evicted from its group "+
			"while it works, and the partitions' new owner would handle the same events at the same time",
			FormatDuration(c.Kafka.DrainTimeout), FormatDuration(c.Kafka.SessionTimeout), FormatDuration(ConsumerHeartbeat)))
	}
	if span := time.Duration(c.Monitoring.LagStatusWindow-1) * c.Monitoring.LagPollInterval; c.Monitoring.LagExporterEnabled &&
		c.Monitoring.LagStatusWindow >= 2 && c.Monitoring.LagPollInterval > 0 && c.Kafka.CommitInterval > 0 && span < 2*c.Kafka.CommitInterval {
		errs = append(errs, fmt.Errorf("LAG_STATUS_WINDOW (monitoring.lag_status_window) %d polls of LAG_POLL_INTERVAL (monitoring.lag_poll_interval) %s "+
			"span %s, less than twice CONSUMER_COMMIT_INTERVAL (kafka.consumer_commit_interval) %s: a group that commits once an interval "+
			"while events keep coming would read as stalled", c.Monitoring.LagStatusWindow, FormatDuration(c.Monitoring.LagPollInterval),
			FormatDuration(span), FormatDuration(c.Kafka.CommitInterval)))
	}
	if c.EventStore.URL == "" {
		for _, name := range []string{"host", "database", "username"} {
			s, _ := lookupSpec("event_store", name)
			if load(s, c).(string) == "" {
				errs = append(errs, fmt.Errorf("%s (%s): must not be empty when DATABASE_URL (event_store.url) is not set", s.Env, s.Path()))
			}
		}
	}
	switch {
	case c.EventSourcing.StoreType == StoreRedis && c.EventStore.RedisURL == "":
		errs = append(errs, errors.New("EVENT_STORE_REDIS_URL (event_store.redis_url): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is redis"))
	case c.EventSourcing.StoreType == StoreMongoDB && c.EventStore.MongoDBURI == "":
		errs = append(errs, errors.New("EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is mongodb"))
	}
	errs = append(errs, c.Kafka.validateSecurity()...)
	errs = append(errs, c.EventStore.validateTLS()...)
	return errors.Join(errs...)
}

// LogValue logs c as one group per section, secrets redacted.
func (c Config) LogValue() slog.Value {
	var groups, attrs []slog.Attr
	for i := range specs {
		s := &specs[i]
		v := load(s, &c)
		if sec, ok := v.(Secret); ok {
			attrs = append(attrs, slog.String(s.Name, sec.String()))
		} else {
			attrs = append(attrs, slog.Any(s.Name, v))
		}
		if i == len(specs)-1 || specs[i+1].Section != s.Section {
			groups = append(groups, slog.Attr{Key: s.Section, Value: slog.GroupValue(attrs...)})
			attrs = nil
		}
	}
	return slog.GroupValue(groups...)
}

// ConnString returns the URL if set, otherwise a postgres:// URL built
// from the parts:
// postgres://user:password@host:port/database?sslmode=M&pool_max_conns=N,
// with sslrootcert, sslcert and sslkey when set. An empty SSLMode is
// "disable", as the parts said before there was a key for it.
// The result holds the password: never log it.
func (s EventStore) ConnString() string {
	if s.URL != "" {
		return s.URL.Reveal()
	}
	u := url.URL{
		Scheme:  "postgres",
		Host:    net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:    "/" + s.Database,
		RawPath: "/" + url.PathEscape(s.Database),
	}
	switch {
	case s.Password != "":
		u.User = url.UserPassword(s.Username, s.Password.Reveal())
	case s.Username != "":
		u.User = url.User(s.Username)
	}
	mode := s.SSLMode
	if mode == "" {
		mode = "disable"
	}
	q := "sslmode=" + url.QueryEscape(mode)
	for _, p := range []struct{ name, path string }{{"sslrootcert", s.SSLRootCert}, {"sslcert", s.SSLCert}, {"sslkey", s.SSLKey}} {
		if p.path != "" {
			q += "&" + p.name + "=" + url.QueryEscape(p.path)
		}
	}
	u.RawQuery = q + "&pool_max_conns=" + strconv.Itoa(s.ConnectionPool)
	return u.String()
}

// TopicName returns the topic of an event category: <prefix>.<category>.
func (c Config) TopicName(category string) string {
	return kafkawire.Topic(c.Kafka.TopicPrefix, category)
}

// ConsumerGroup returns the consumer group of a consuming service (projector, notifier,
// auditor): <prefix>-<service>, so annals-projector by default, and deployments that share a
// broker with prefixes of their own never share a group.
func (c Config) ConsumerGroup(service string) string {
	return c.Kafka.TopicPrefix + "-" + service
}

// DLQTopic returns the dead-letter topic of a consumer group:
// <prefix>.dlq.<group>.
func (c Config) DLQTopic(group string) string {
	return kafkawire.DeadLetterTopic(c.Kafka.TopicPrefix, group)
}

// ResolvePath returns the configuration file to load: flagValue if set,
// else $ANNALS_CONFIG, else DefaultPath if that file exists, else "" (no
// file: defaults and environment only).
func ResolvePath(flagValue string, lookupEnv func(string) (string, bool)) string {
	if flagValue != "" {
		return flagValue
	}
	if lookupEnv != nil {
		if v, ok := lookupEnv(PathEnv); ok && v != "" {
			return v
		}
	}
	if fi, err := os.Stat(DefaultPath); err == nil && !fi.IsDir() {
		return DefaultPath
	}
	return ""
}

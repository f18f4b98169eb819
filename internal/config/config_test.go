package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/config"
)

// env returns a lookup function over a fixed environment.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func writeFile(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.tsk")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	want := &config.Config{
		EventSourcing: config.EventSourcing{Enabled: true, StoreType: "postgresql", SnapshotFrequency: 100, Serialization: "avro"},
		EventStore: config.EventStore{Host: "127.0.0.1", Port: 55432, Database: "annals", Username: "annals",
			ConnectionPool: 10, SSLMode: "prefer", RedisPrefix: "annals", MongoDBDatabase: "annals"},
		Projections: config.Projections{Enabled: true, RealTime: true, BatchSize: 1000, Interval: 5 * time.Second, Parallel: true, RetryAttempts: 3,
			InboxRetention: 7 * 24 * time.Hour},
		Aggregates: config.Aggregates{SnapshotEnabled: true, SnapshotRetention: 30 * 24 * time.Hour,
			OptimisticConcurrency: true, MaxEventsPerAggregate: 10000, MaxEventBytes: 983040},
		Handlers: config.Handlers{Enabled: true, AsyncProcessing: true, ErrorHandling: true, RetryFailedEvents: true},
		Monitoring: config.Monitoring{MetricsEnabled: true, EventTracking: true, PerformanceMonitoring: true,
			LagExporterEnabled: true, LagPollInterval: 10 * time.Second, LagStatusWindow: 10,
			OTLPProtocol: "http/protobuf", TracesSampler: "parentbased_always_on", TracesSamplerArg: "1"},
		Kafka: config.Kafka{Brokers: []string{"127.0.0.1:9092"}, TopicPrefix: "annals", TopicPartitions: 12,
			ReplicationFactor: 1, SessionTimeout: 10 * time.Second, DrainTimeout: 6 * time.Second,
			CommitInterval: time.Second, SecurityProtocol: "PLAINTEXT"},
		Relay:        config.Relay{MaxReadBytes: 16 << 20},
		EventSigning: config.EventSigning{Required: true},
		SMTP: config.SMTP{Addr: "127.0.0.1:1025", From: "Annals <noreply@annals.local>", StartTLS: "opportunistic",
			Timeout: 10 * time.Second},
		Notifier: config.Notifier{RateLimit: 100, UserWait: 30 * time.Second, EmailsPerPrincipalHour: 1000, BatchLinger: 20 * time.Millisecond},
		Auditor:  config.Auditor{BatchLinger: 20 * time.Millisecond, VerifyInterval: time.Hour, CheckpointInterval: time.Minute},
		Auth:     config.Auth{OIDCAlgorithms: []string{"RS256", "ES256"}, OIDCScopesClaim: "scope"},
		HTTP:     config.HTTP{Addr: "", ShutdownTimeout: 15 * time.Second},
		Log:      config.Log{Level: "info", Format: "json"},
		Writer: config.Writer{MigrateOnStart: false, CommandRateLimit: 100, FeedHeartbeatInterval: 15 * time.Second,
			FeedBuffer: 256, FeedMaxSubscribers: 1000},
	}
	if got := config.Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default():\ngot  %+v\nwant %+v", got, want)
	}
	if err := config.Default().Validate(); err != nil {
		t.Errorf("Default().Validate(): %v", err)
	}
	noFile, err := config.Load("", env())
	if err != nil {
		t.Fatal(err)
	}
	if got := noFile; !reflect.DeepEqual(got, want) {
		t.Errorf(`Load("", empty env):\ngot  %+v\nwant %+v`, got, want)
	}
}

func TestShippedFileEqualsDefault(t *testing.T) {
	for _, lookup := range []func(string) (string, bool){env(), nil} {
		got, err := config.Load(shippedPath, lookup)
		if err != nil {
			t.Fatalf("Load(shipped file): %v", err)
		}
		if want := config.Default(); !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	keys := config.Keys()
	if got, want := len(keys), 100; got != want {
		t.Errorf("got %d keys, want %d", got, want)
	}
	seenEnv, seenPath := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		if seenEnv[k.Env] || seenPath[k.Path()] {
			t.Errorf("%s (%s) is listed twice", k.Path(), k.Env)
		}
		seenEnv[k.Env], seenPath[k.Path()] = true, true
		if got, want := k.Secure, k.Kind == config.KindSecret; got != want {
			t.Errorf("%s: Secure got %v, want %v", k.Path(), got, want)
		}
		if k.Doc == "" {
			t.Errorf("%s has no Doc", k.Path())
		}
		got, ok := config.LookupEnv(k.Env)
		if !ok || !reflect.DeepEqual(got, k) {
			t.Errorf("LookupEnv(%q): got %+v, %v, want %+v", k.Env, got, ok, k)
		}
	}
	var want []string
	for _, k := range keys {
		want = append(want, k.Env)
	}
	if got := config.EnvNames(); !slices.Equal(got, want) {
		t.Errorf("EnvNames():\ngot  %v\nwant %v", got, want)
	}
	if _, ok := config.LookupEnv("NOPE"); ok {
		t.Error(`LookupEnv("NOPE") found a key`)
	}

	// Keys returns copies.
	keys[1].Allowed[0] = "mongodb"
	if got, _ := config.LookupEnv("EVENT_STORE_TYPE"); !slices.Equal(got.Allowed, []string{"postgresql", "redis", "mongodb"}) {
		t.Errorf("Keys() shares Allowed with the schema: %v", got.Allowed)
	}

	kinds := map[string]config.Kind{
		"EVENT_SOURCING_ENABLED": config.KindBool, "SNAPSHOT_FREQUENCY": config.KindInt,
		"EVENT_STORE_TYPE": config.KindString, "SNAPSHOT_RETENTION_PERIOD": config.KindDuration,
		"SHUTDOWN_TIMEOUT": config.KindDuration, "KAFKA_BROKERS": config.KindList,
		"DATABASE_URL": config.KindSecret, "EVENT_STORE_PASSWORD": config.KindSecret,
	}
	for name, want := range kinds {
		if got, _ := config.LookupEnv(name); got.Kind != want {
			t.Errorf("%s: kind got %q, want %q", name, got.Kind, want)
		}
	}
}

func TestLoadResolution(t *testing.T) {
	file := `[event_sourcing]
snapshot_frequency: 7
[event_store]
port: @env("EVENT_STORE_PORT", "6000")
host: @env("PGHOST_CUSTOM", "db.file")
database: @env("EVENT_STORE_DATABASE")
[kafka]
brokers: "a:1, b:2,"
[log]
level: @env("LOG_LEVEL", "debug")
`
	tests := []struct {
		name string
		env  func(string) (string, bool)
		get  func(c *config.Config) any
		want any
	}{
		{"file literal", env(), func(c *config.Config) any { return c.EventSourcing.SnapshotFrequency }, 7},
		{"env beats file literal", env("SNAPSHOT_FREQUENCY", "8"), func(c *config.Config) any { return c.EventSourcing.SnapshotFrequency }, 8},
		{"file @env default", env(), func(c *config.Config) any { return c.EventStore.Port }, 6000},
		{"env beats file @env default", env("EVENT_STORE_PORT", "6001"), func(c *config.Config) any { return c.EventStore.Port }, 6001},
		{"file names its own variable", env("PGHOST_CUSTOM", "db.env"), func(c *config.Config) any { return c.EventStore.Host }, "db.env"},
		{"schema variable ignored when the file names another", env("EVENT_STORE_HOST", "ignored"), func(c *config.Config) any { return c.EventStore.Host }, "db.file"},
		{"@env without default falls back to schema", env(), func(c *config.Config) any { return c.EventStore.Database }, "annals"},
		{"@env without default, env set", env("EVENT_STORE_DATABASE", "x"), func(c *config.Config) any { return c.EventStore.Database }, "x"},
		{"key absent from file, env set", env("LOG_FORMAT", "text"), func(c *config.Config) any { return c.Log.Format }, "text"},
		{"key absent from file, schema default", env(), func(c *config.Config) any { return c.Kafka.TopicPrefix }, "annals"},
		{"list from file", env(), func(c *config.Config) any { return c.Kafka.Brokers }, []string{"a:1", "b:2"}},
		{"list from env", env("KAFKA_BROKERS", " k1:9092 ,k2:9093"), func(c *config.Config) any { return c.Kafka.Brokers }, []string{"k1:9092", "k2:9093"}},
		{"allowed values are case-insensitive", env("LOG_LEVEL", "WARN"), func(c *config.Config) any { return c.Log.Level }, "warn"},
		{"ints are trimmed", env("PROJECTION_BATCH_SIZE", " 50 "), func(c *config.Config) any { return c.Projections.BatchSize }, 50},
		{"zero retries allowed", env("PROJECTION_RETRY_ATTEMPTS", "0"), func(c *config.Config) any { return c.Projections.RetryAttempts }, 0},
		{"http addr :port", env("HTTP_ADDR", ":9090"), func(c *config.Config) any { return c.HTTP.Addr }, ":9090"},
		{"http addr host:port", env("HTTP_ADDR", "127.0.0.1:0"), func(c *config.Config) any { return c.HTTP.Addr }, "127.0.0.1:0"},
	}
	path := writeFile(t, file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestBools(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"On", true},
		{"false", false}, {"False", false}, {"0", false}, {"no", false}, {"OFF", false},
	} {
		c, err := config.Load("", env("MIGRATE_ON_START", tt.in, "EVENT_SOURCING_ENABLED", tt.in))
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := c.Writer.MigrateOnStart && c.EventSourcing.Enabled; got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDurations(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * day},
		{"2w", 14 * day},
		{"1d12h", 36 * time.Hour},
		{"15s", 15 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1w2d3h", 9*day + 3*time.Hour},
		{"1.5h", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
		{"-1d", -day},
		{"0", 0},
	}
	for _, tt := range tests {
		got, err := config.ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q): got %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "d", "1.5d", "30", "1x", "1dd", "9999999999999999w", "-"} {
		if got, err := config.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q): got %v, want an error", bad, got)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{30 * day, "30d"}, {14 * day, "2w"}, {36 * time.Hour, "1d12h0m0s"}, {15 * time.Second, "15s"}, {0, "0s"},
	} {
		if got := config.FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v): got %q, want %q", tt.d, got, tt.want)
		}
	}

	// Through Load, from the environment.
	for _, tt := range tests[:4] {
		c, err := config.Load("", env("SNAPSHOT_RETENTION_PERIOD", tt.in, "SHUTDOWN_TIMEOUT", tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := c.Aggregates.SnapshotRetention; got != tt.want {
			t.Errorf("SNAPSHOT_RETENTION_PERIOD=%s: got %v, want %v", tt.in, got, tt.want)
		}
		if got := c.HTTP.ShutdownTimeout; got != tt.want {
			t.Errorf("SHUTDOWN_TIMEOUT=%s: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestLagKeys: the lag exporter's keys, from the environment and from the file, as the
// writer and `annals lag-exporter` read them.
func TestLagKeys(t *testing.T) {
	c, err := config.Load("", env("LAG_EXPORTER_ENABLED", "off", "LAG_POLL_INTERVAL", "250ms", "LAG_STATUS_WINDOW", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Monitoring, (config.Monitoring{MetricsEnabled: true, EventTracking: true, PerformanceMonitoring: true,
		LagExporterEnabled: false, LagPollInterval: 250 * time.Millisecond, LagStatusWindow: 2,
		OTLPProtocol: "http/protobuf", TracesSampler: "parentbased_always_on", TracesSamplerArg: "1"}); got != want {
		t.Errorf("from the environment: got %+v, want %+v", got, want)
	}
	path := writeFile(t, "[monitoring]\nlag_poll_interval: 1m30s\nlag_status_window: @env(\"LAG_STATUS_WINDOW\", \"30\")\n")
	c, err = config.Load(path, env())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Monitoring; !got.LagExporterEnabled || got.LagPollInterval != 90*time.Second || got.LagStatusWindow != 30 {
		t.Errorf("from the file: got %+v, want the exporter on, 1m30s, 30 polls", got)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // "" for no file
		env  func(string) (string, bool)
		want []string // substrings of the error
	}{
		{
			name: "unknown section",
			file: "[event_sourcing]\nenabled: true\n\n[eventstore]\nhost: x\n",
			want: []string{":4: unknown section [eventstore]; known sections: event_sourcing, event_store, projections, aggregates, handlers, monitoring, kafka, relay, event_signing, smtp, notifier, auditor, auth, http, log, writer"},
		},
		{
			name: "unknown key",
			file: "[event_store]\nhots: x\n",
			want: []string{`:2: unknown key "hots" in [event_store]; known keys: url, host, port, database, username, password, connection_pool`},
		},
		{
			name: "bad bool from env",
			env:  env("PROJECTIONS_ENABLED", "maybe"),
			want: []string{`PROJECTIONS_ENABLED (projections.enabled): "maybe" is not a boolean`},
		},
		{
			name: "bad int from env",
			env:  env("SNAPSHOT_FREQUENCY", "abc"),
			want: []string{`SNAPSHOT_FREQUENCY (event_sourcing.snapshot_frequency): "abc" is not an integer`},
		},
		{
			name: "bad int from file literal",
			file: "[event_sourcing]\n\nsnapshot_frequency: abc\n",
			want: []string{`:3: SNAPSHOT_FREQUENCY (event_sourcing.snapshot_frequency): "abc" is not an integer`},
		},
		{
			name: "bad int from file @env default",
			file: "[event_store]\nport: @env(\"EVENT_STORE_PORT\", \"x\")\n",
			want: []string{`:2: EVENT_STORE_PORT (event_store.port): "x" is not an integer`},
		},
		{
			name: "huge int",
			env:  env("EVENT_STORE_CONNECTION_POOL", "99999999999999999999999"),
			want: []string{`EVENT_STORE_CONNECTION_POOL (event_store.connection_pool): "99999999999999999999999" is out of range; must be at least 1`},
		},
		{
			name: "bad duration",
			env:  env("SNAPSHOT_RETENTION_PERIOD", "a month"),
			want: []string{`SNAPSHOT_RETENTION_PERIOD (aggregates.snapshot_retention): "a month" is not a duration`},
		},
		{
			name: "zero duration",
			env:  env("SNAPSHOT_RETENTION_PERIOD", "0s"),
			want: []string{`SNAPSHOT_RETENTION_PERIOD (aggregates.snapshot_retention): "0s" is out of range; must be greater than 0`},
		},
		{
			name: "negative shutdown timeout",
			env:  env("SHUTDOWN_TIMEOUT", "-1s"),
			want: []string{`SHUTDOWN_TIMEOUT (http.shutdown_timeout): "-1s" is out of range; must not be negative`},
		},
		{
			name: "drain as long as the session",
			env:  env("CONSUMER_DRAIN_TIMEOUT", "12s", "KAFKA_SESSION_TIMEOUT", "12s"),
			want: []string{`CONSUMER_DRAIN_TIMEOUT (kafka.consumer_drain_timeout) 12s must be shorter than KAFKA_SESSION_TIMEOUT (kafka.session_timeout) 12s minus the consumers' heartbeat interval (1s)`},
		},
		{
			name: "drain past the default session",
			env:  env("CONSUMER_DRAIN_TIMEOUT", "9500ms"),
			want: []string{`CONSUMER_DRAIN_TIMEOUT (kafka.consumer_drain_timeout) 9.5s must be shorter than KAFKA_SESSION_TIMEOUT (kafka.session_timeout) 10s`},
		},
		{
			name: "zero drain timeout",
			env:  env("CONSUMER_DRAIN_TIMEOUT", "0s"),
			want: []string{`CONSUMER_DRAIN_TIMEOUT (kafka.consumer_drain_timeout): "0s" is out of range; must be greater than 0`},
		},
		{
			name: "commit interval past 30s",
			env:  env("CONSUMER_COMMIT_INTERVAL", "31s"),
			want: []string{`CONSUMER_COMMIT_INTERVAL (kafka.consumer_commit_interval): "31s" is out of range; must be between 0s (a commit after every batch) and 30s`},
		},
		{
			name: "negative commit interval",
			env:  env("CONSUMER_COMMIT_INTERVAL", "-1s"),
			want: []string{`CONSUMER_COMMIT_INTERVAL (kafka.consumer_commit_interval): "-1s" is out of range; must be between 0s (a commit after every batch) and 30s`},
		},
		{
			name: "notifier linger below 0s",
			env:  env("NOTIFIER_BATCH_LINGER", "-5ms"),
			want: []string{`NOTIFIER_BATCH_LINGER (notifier.batch_linger): "-5ms" is out of range; must be between 0s and 1s`},
		},
		{
			name: "auditor linger past 1s",
			env:  env("AUDITOR_BATCH_LINGER", "2s"),
			want: []string{`AUDITOR_BATCH_LINGER (auditor.batch_linger): "2s" is out of range; must be between 0s and 1s`},
		},
		{
			name: "lag window within the commit interval",
			env:  env("LAG_EXPORTER_ENABLED", "true", "LAG_POLL_INTERVAL", "250ms", "LAG_STATUS_WINDOW", "4"),
			want: []string{`LAG_STATUS_WINDOW (monitoring.lag_status_window) 4 polls of LAG_POLL_INTERVAL (monitoring.lag_poll_interval) 250ms span 750ms, less than twice CONSUMER_COMMIT_INTERVAL (kafka.consumer_commit_interval) 1s`},
		},
		{
			name: "inbox kept for minutes",
			env:  env("INBOX_RETENTION", "30m"),
			want: []string{`INBOX_RETENTION (projections.inbox_retention): "30m0s" is out of range; must be at least 1h`},
		},
		{
			name: "zero lag poll interval",
			env:  env("LAG_POLL_INTERVAL", "0s"),
			want: []string{`LAG_POLL_INTERVAL (monitoring.lag_poll_interval): "0s" is out of range; must be greater than 0`},
		},
		{
			name: "negative lag poll interval",
			env:  env("LAG_POLL_INTERVAL", "-5s"),
			want: []string{`LAG_POLL_INTERVAL (monitoring.lag_poll_interval): "-5s" is out of range; must be greater than 0`},
		},
		{
			name: "lag poll interval without a unit",
			file: "[monitoring]\nlag_poll_interval: 10\n",
			want: []string{`:2: LAG_POLL_INTERVAL (monitoring.lag_poll_interval): "10" is not a duration`},
		},
		{
			name: "lag status window of one poll",
			env:  env("LAG_STATUS_WINDOW", "1"),
			want: []string{`LAG_STATUS_WINDOW (monitoring.lag_status_window): "1" is out of range; must be at least 2`},
		},
		{
			name: "bad lag exporter switch",
			env:  env("LAG_EXPORTER_ENABLED", "sometimes"),
			want: []string{`LAG_EXPORTER_ENABLED (monitoring.lag_exporter_enabled): "sometimes" is not a boolean`},
		},
		{
			name: "port out of range",
			env:  env("EVENT_STORE_PORT", "70000"),
			want: []string{`EVENT_STORE_PORT (event_store.port): "70000" is out of range; must be between 1 and 65535`},
		},
		{
			name: "port zero",
			env:  env("EVENT_STORE_PORT", "0"),
			want: []string{`EVENT_STORE_PORT (event_store.port): "0" is out of range; must be between 1 and 65535`},
		},
		{
			name: "snapshot frequency zero",
			env:  env("SNAPSHOT_FREQUENCY", "0"),
			want: []string{`SNAPSHOT_FREQUENCY (event_sourcing.snapshot_frequency): "0" is out of range; must be at least 1`},
		},
		{
			name: "negative retries",
			env:  env("PROJECTION_RETRY_ATTEMPTS", "-1"),
			want: []string{`PROJECTION_RETRY_ATTEMPTS (projections.retry_attempts): "-1" is out of range; must be at least 0`},
		},
		{
			name: "unknown store",
			env:  env("EVENT_STORE_TYPE", "cassandra"),
			want: []string{`EVENT_STORE_TYPE (event_sourcing.event_store_type): "cassandra" is not supported; allowed: postgresql, redis, mongodb`},
		},
		{
			name: "redis store without its URL",
			env:  env("EVENT_STORE_TYPE", "redis"),
			want: []string{`EVENT_STORE_REDIS_URL (event_store.redis_url): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is redis`},
		},
		{
			name: "mongodb store without its URI",
			env:  env("EVENT_STORE_TYPE", "mongodb"),
			want: []string{`EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is mongodb`},
		},
		{
			name: "mongodb store from the file without its URI",
			file: "[event_sourcing]\nevent_store_type: @env(\"EVENT_STORE_TYPE\", \"mongodb\") # postgresql, redis, mongodb\n",
			want: []string{`EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is mongodb`},
		},
		{
			name: "redis URL of another scheme",
			env:  env("EVENT_STORE_TYPE", "redis", "EVENT_STORE_REDIS_URL", "http://secret@cache:6379"),
			want: []string{`EVENT_STORE_REDIS_URL (event_store.redis_url): the value is not a redis:// or rediss:// URL with a host`},
		},
		{
			name: "mongodb URI of another scheme",
			env:  env("EVENT_STORE_TYPE", "mongodb", "EVENT_STORE_MONGODB_URI", "postgres://secret@db"),
			want: []string{`EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): the value is not a mongodb:// or mongodb+srv:// URI with a host`},
		},
		{
			name: "empty redis prefix",
			env:  env("EVENT_STORE_REDIS_PREFIX", ""),
			want: []string{`EVENT_STORE_REDIS_PREFIX (event_store.redis_prefix): must not be empty`},
		},
		{
			name: "xml serialization",
			env:  env("EVENT_SERIALIZATION", "xml"),
			want: []string{`EVENT_SERIALIZATION (event_sourcing.event_serialization): "xml" is not supported; allowed: avro, json, msgpack, protobuf`},
		},
		{
			name: "bad log level",
			env:  env("LOG_LEVEL", "verbose"),
			want: []string{`LOG_LEVEL (log.level): "verbose" is not supported; allowed: debug, info, warn, error`},
		},
		{
			name: "bad broker",
			env:  env("KAFKA_BROKERS", "a:1,b"),
			want: []string{`KAFKA_BROKERS (kafka.brokers): broker "b" is not host:port`},
		},
		{
			name: "no broker",
			env:  env("KAFKA_BROKERS", " , "),
			want: []string{`KAFKA_BROKERS (kafka.brokers): at least one broker is required`},
		},
		{
			name: "bad topic prefix",
			env:  env("KAFKA_TOPIC_PREFIX", "my topics"),
			want: []string{`KAFKA_TOPIC_PREFIX (kafka.topic_prefix): "my topics" is not a valid topic prefix`},
		},
		{
			name: "bad smtp addr",
			env:  env("SMTP_ADDR", "mail"),
			want: []string{`SMTP_ADDR (smtp.addr): "mail" is not host:port`},
		},
		{
			name: "bad smtp from",
			env:  env("SMTP_FROM", "nobody"),
			want: []string{`SMTP_FROM (smtp.from): "nobody" is not an email address`},
		},
		{
			name: "bad smtp starttls",
			env:  env("SMTP_STARTTLS", "always"),
			want: []string{`SMTP_STARTTLS (smtp.starttls): "always" is not supported; allowed: none, opportunistic, required`},
		},
		{
			name: "smtp password without user",
			env:  env("SMTP_PASSWORD", "hunter2"),
			want: []string{`SMTP_PASSWORD (smtp.password): set, but SMTP_USERNAME (smtp.username) is empty`},
		},
		{
			name: "negative notifier rate limit",
			env:  env("NOTIFIER_RATE_LIMIT", "-1"),
			want: []string{`NOTIFIER_RATE_LIMIT (notifier.rate_limit): "-1" is out of range; must be at least 0`},
		},
		{
			name: "zero notifier user wait",
			env:  env("NOTIFIER_USER_WAIT", "0s"),
			want: []string{`NOTIFIER_USER_WAIT (notifier.user_wait): "0s" is out of range; must be greater than 0`},
		},
		{
			name: "bad http addr",
			env:  env("HTTP_ADDR", "8080"),
			want: []string{`HTTP_ADDR (http.addr): "8080" is not host:port or :port`},
		},
		{
			name: "empty host without URL",
			env:  env("EVENT_STORE_HOST", ""),
			want: []string{`EVENT_STORE_HOST (event_store.host): must not be empty when DATABASE_URL (event_store.url) is not set`},
		},
		{
			name: "syntax error",
			file: "[event_store]\nport: \"5432\n",
			want: []string{`:2: unterminated string`},
		},
		{
			name: "variable named by the file",
			file: "[event_store]\nport: @env(\"PGPORT\", \"5432\")\n",
			env:  env("PGPORT", "x"),
			want: []string{`PGPORT (event_store.port): "x" is not an integer`},
		},
		{
			name: "every problem at once",
			file: "[nope]\n[event_store]\nhots: x\nport: abc\n",
			env:  env("EVENT_STORE_TYPE", "cassandra", "LOG_FORMAT", "xml"),
			want: []string{
				`:1: unknown section [nope]`,
				`:3: unknown key "hots"`,
				`EVENT_STORE_TYPE (event_sourcing.event_store_type): "cassandra" is not supported`,
				`:4: EVENT_STORE_PORT (event_store.port): "abc" is not an integer`,
				`LOG_FORMAT (log.format): "xml" is not supported; allowed: json, text`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			lookup := tt.env
			if lookup == nil {
				lookup = env()
			}
			c, err := config.Load(path, lookup)
			if err == nil {
				t.Fatalf("got %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("got a config with the error: %+v", c)
			}
			lines := strings.Split(err.Error(), "\n")
			if got, want := len(lines), len(tt.want); got != want {
				t.Errorf("got %d errors, want %d:\n%v", got, want, err)
			}
			for _, want := range tt.want {
				if strings.HasPrefix(want, ":") {
					want = path + want // errors in the file start with path:line
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.tsk")
	_, err := config.Load(path, env())
	if err == nil {
		t.Fatal("got nil error for a missing file")
	}
	if !os.IsNotExist(errorsUnwrapAll(err)) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want a not-exist error naming %s", err, path)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

const secretValue = "s3cr3t-P@ss"

func TestSecureEnv(t *testing.T) {
	path := writeFile(t, "[event_store]\npassword: @env.secure(\"EVENT_STORE_PASSWORD\")\nport: @env.secure(\"SECRET_PORT\")\n")
	c, err := config.Load(path, env("EVENT_STORE_PASSWORD", secretValue, "DATABASE_URL", "postgres://u:"+secretValue+"@h/db"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.EventStore.Password.Reveal(), secretValue; got != want {
		t.Errorf("password: got %q, want %q", got, want)
	}

	var logged bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&logged, nil))
	jsonLog.Info("config", "config", c, "store", c.EventStore, "password", c.EventStore.Password)
	textLog := slog.New(slog.NewTextHandler(&logged, nil))
	textLog.Info("config", "config", c, "store", c.EventStore, "password", c.EventStore.Password)
	marshalled, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":           fmt.Sprintf("%v", c),
		"%+v":          fmt.Sprintf("%+v", *c),
		"%#v":          fmt.Sprintf("%#v", c),
		"%s":           fmt.Sprintf("%s", c.EventStore.URL),
		"%d":           fmt.Sprintf("%d", c.EventStore.Password),
		"%q":           fmt.Sprintf("%q", c.EventStore.Password),
		"%x":           fmt.Sprintf("%x", c.EventStore),
		"Print":        fmt.Sprint(c.EventStore.Password, c.EventStore.URL),
		"String":       c.EventStore.Password.String(),
		"slog":         logged.String(),
		"json.Marshal": string(marshalled),
	}
	for name, out := range outputs {
		if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") && name != "%x" && name != "%d" {
			t.Errorf("%s does not show [redacted]: %s", name, out)
		}
	}
	if got, want := fmt.Sprintf("%q", c.EventStore.Password), `"[redacted]"`; got != want {
		t.Errorf("%%q: got %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", c.EventStore.Password), `config.Secret("[redacted]")`; got != want {
		t.Errorf("%%#v: got %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(config.Secret("")), ""; got != want {
		t.Errorf("empty secret: got %q, want %q", got, want)
	}
	if !strings.Contains(logged.String(), `"password":"[redacted]"`) {
		t.Errorf("slog JSON output has no redacted password: %s", logged.String())
	}

	// Error messages never quote a secret either.
	for _, tt := range []struct {
		name   string
		path   string
		lookup func(string) (string, bool)
		want   string
	}{
		{"bad URL", "", env("DATABASE_URL", "mysql://u:"+secretValue+"@h/db"),
			"DATABASE_URL (event_store.url): the value is not a postgres:// or postgresql:// URL"},
		{"unparsable URL", "", env("DATABASE_URL", "postgres://u:"+secretValue+"@h:port/db"),
			"DATABASE_URL (event_store.url): the value is not a postgres:// or postgresql:// URL"},
		{"non-secret key read through @env.secure", path, env("SECRET_PORT", secretValue),
			"SECRET_PORT (event_store.port): the value is not an integer"},
	} {
		_, err := config.Load(tt.path, tt.lookup)
		if err == nil {
			t.Fatalf("%s: got nil error", tt.name)
		}
		if strings.Contains(err.Error(), secretValue) {
			t.Errorf("%s: error shows the secret: %v", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestConnString(t *testing.T) {
	tests := []struct {
		name  string
		store config.EventStore
		want  string
	}{
		{
			name:  "defaults",
			store: config.Default().EventStore,
			want:  "postgres://annals@127.0.0.1:55432/annals?sslmode=prefer&pool_max_conns=10",
		},
		{
			name: "escaping",
			store: config.EventStore{Host: "db.example", Port: 5432, Database: "my db/x", Username: "a@b",
				Password: "p:w/d?#%", ConnectionPool: 3},
			want: "postgres://a%40b:p%3Aw%2Fd%3F%23%25@db.example:5432/my%20db%2Fx?sslmode=disable&pool_max_conns=3",
		},
		{
			name:  "IPv6 host",
			store: config.EventStore{Host: "::1", Port: 5432, Database: "d", Username: "u", Password: "p", ConnectionPool: 1},
			want:  "postgres://u:p@[::1]:5432/d?sslmode=disable&pool_max_conns=1",
		},
		{
			name:  "URL wins",
			store: config.EventStore{URL: "postgres://x:y@z/w", Host: "ignored", Port: 1, ConnectionPool: 1},
			want:  "postgres://x:y@z/w",
		},
	}
	for _, tt := range tests {
		if got := tt.store.ConnString(); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestTopics(t *testing.T) {
	c, err := config.Load("", env("KAFKA_TOPIC_PREFIX", "prod.annals"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.TopicName("user"), "prod.annals.user"; got != want {
		t.Errorf("TopicName: got %q, want %q", got, want)
	}
	if got, want := c.DLQTopic("annals-projector"), "prod.annals.dlq.annals-projector"; got != want {
		t.Errorf("DLQTopic: got %q, want %q", got, want)
	}
	if got, want := config.Default().TopicName("order"), "annals.order"; got != want {
		t.Errorf("default TopicName: got %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *config.Config)
		want   []string
	}{
		{"defaults", func(*config.Config) {}, nil},
		{"URL replaces parts", func(c *config.Config) {
			c.EventStore.URL, c.EventStore.Host, c.EventStore.Database, c.EventStore.Username = "postgres:///annals", "", "", ""
		}, nil},
		{"unsupported store", func(c *config.Config) { c.EventSourcing.StoreType = "cassandra" },
			[]string{`EVENT_STORE_TYPE (event_sourcing.event_store_type): "cassandra" is not supported; allowed: postgresql, redis, mongodb`}},
		{"mongodb store without its URI", func(c *config.Config) { c.EventSourcing.StoreType = "mongodb" },
			[]string{`EVENT_STORE_MONGODB_URI (event_store.mongodb_uri): must be set when EVENT_STORE_TYPE (event_sourcing.event_store_type) is mongodb`}},
		{"redis store", func(c *config.Config) {
			c.EventSourcing.StoreType, c.EventStore.RedisURL = "redis", "redis://127.0.0.1:6379/0"
		}, nil},
		{"ranges", func(c *config.Config) { c.EventStore.Port, c.Kafka.TopicPartitions = 0, 0 }, []string{
			`EVENT_STORE_PORT (event_store.port): "0" is out of range; must be between 1 and 65535`,
			`KAFKA_TOPIC_PARTITIONS (kafka.topic_partitions): "0" is out of range; must be at least 1`,
		}},
		{"durations", func(c *config.Config) { c.Aggregates.SnapshotRetention = 0 }, []string{
			`SNAPSHOT_RETENTION_PERIOD (aggregates.snapshot_retention): "0s" is out of range; must be greater than 0`,
		}},
		{"lag exporter", func(c *config.Config) { c.Monitoring.LagPollInterval, c.Monitoring.LagStatusWindow = -time.Second, 0 }, []string{
			`LAG_POLL_INTERVAL (monitoring.lag_poll_interval): "-1s" is out of range; must be greater than 0`,
			`LAG_STATUS_WINDOW (monitoring.lag_status_window): "0" is out of range; must be at least 2`,
		}},
		{"missing parts", func(c *config.Config) { c.EventStore.Host, c.EventStore.Database, c.EventStore.Username = "", "", "" }, []string{
			`EVENT_STORE_HOST (event_store.host): must not be empty when DATABASE_URL (event_store.url) is not set`,
			`EVENT_STORE_DATABASE (event_store.database): must not be empty`,
			`EVENT_STORE_USERNAME (event_store.username): must not be empty`,
		}},
		{"bad URL", func(c *config.Config) { c.EventStore.URL = config.Secret("http://" + secretValue) }, []string{
			`DATABASE_URL (event_store.url): the value is not a postgres:// or postgresql:// URL`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.modify(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got nil error")
			}
			lines := strings.Split(err.Error(), "\n")
			if got, want := len(lines), len(tt.want); got != want {
				t.Errorf("got %d errors, want %d:\n%v", got, want, err)
			}
			for i, want := range tt.want {
				if i < len(lines) && !strings.HasPrefix(lines[i], want) {
					t.Errorf("error %d:\ngot  %s\nwant %s", i, lines[i], want)
				}
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	t.Chdir("../..") // the repository root, where DefaultPath exists
	tests := []struct {
		name   string
		flag   string
		lookup func(string) (string, bool)
		want   string
	}{
		{"flag wins", "a.tsk", env("ANNALS_CONFIG", "b.tsk"), "a.tsk"},
		{"environment", "", env("ANNALS_CONFIG", "b.tsk"), "b.tsk"},
		{"empty environment value", "", env("ANNALS_CONFIG", ""), config.DefaultPath},
		{"default file", "", env(), config.DefaultPath},
		{"nil lookup", "", nil, config.DefaultPath},
	}
	for _, tt := range tests {
		if got := config.ResolvePath(tt.flag, tt.lookup); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	t.Chdir(t.TempDir())
	if got, want := config.ResolvePath("", env()), ""; got != want {
		t.Errorf("no default file: got %q, want %q", got, want)
	}
}

// TestTracingKeys: OpenTelemetry's environment variables configure the traces, and a value
// that cannot work stops start-up naming its key.
func TestTracingKeys(t *testing.T) {
	c, err := config.Load("", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc",
		"OTEL_SERVICE_NAME", "billing", "OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.25"))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Monitoring
	if m.OTLPEndpoint != "http://collector:4317" || m.OTLPProtocol != "grpc" || m.ServiceName != "billing" ||
		m.TracesSampler != "parentbased_traceidratio" || m.TracesSamplerArg != "0.25" {
		t.Errorf("got %+v", m)
	}
	for _, tc := range []struct{ name, env, value, want string }{
		{"EndpointWithoutScheme", "OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318", "OTEL_EXPORTER_OTLP_ENDPOINT (monitoring.otlp_endpoint)"},
		{"EndpointNotHTTP", "OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4318", "is not an http:// or https:// URL"},
		{"ProtocolUnsupported", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "allowed: http/protobuf, grpc"},
		{"SamplerUnknown", "OTEL_TRACES_SAMPLER", "jaeger_remote", "OTEL_TRACES_SAMPLER (monitoring.traces_sampler)"},
		{"RatioAboveOne", "OTEL_TRACES_SAMPLER_ARG", "2", "is not a number from 0 to 1"},
		{"RatioNotANumber", "OTEL_TRACES_SAMPLER_ARG", "half", "is not a number from 0 to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load("", env(tc.env, tc.value))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s=%s: error %v, want one containing %q", tc.env, tc.value, err, tc.want)
			}
		})
	}
}

package config

import (
	"fmt"
	"slices"
	"time"
)

// Kind is the type of a configuration value.
type Kind string

// The kinds of configuration values.
const (
	KindBool     Kind = "bool"     // true/false, 1/0, yes/no, on/off
	KindInt      Kind = "int"      // decimal integer
	KindString   Kind = "string"   // any text, possibly limited to Allowed
	KindDuration Kind = "duration" // Go duration plus whole days and weeks: 15s, 1h30m, 30d, 2w
	KindList     Kind = "list"     // comma-separated strings
	KindSecret   Kind = "secret"   // text that is never printed
)

// Key describes one configuration key.
type Key struct {
	Section string
	Name    string
	Env     string // environment variable that overrides it
	Kind    Kind
	Default string   // default value, in the same text form as the file
	Allowed []string // for strings: the accepted values; nil means any
	Secure  bool     // the value is a secret
	Doc     string
}

// Path returns "section.name".
func (k Key) Path() string { return k.Section + "." + k.Name }

// spec is a Key plus what the package needs to parse, check and store it.
type spec struct {
	Key
	bounds bounds
	check  func(v any, hide bool) string // extra check; "" when fine
	field  func(c *Config) any           // pointer to the Config field
}

// bounds is an inclusive range for ints and durations.
type bounds struct {
	min, max       int64
	hasMin, hasMax bool
	desc           string
}

func atLeast(n int64) bounds {
	return bounds{min: n, hasMin: true, desc: fmt.Sprintf("must be at least %d", n)}
}

func between(lo, hi int64) bounds {
	return bounds{min: lo, max: hi, hasMin: true, hasMax: true, desc: fmt.Sprintf("must be between %d and %d", lo, hi)}
}

var (
	positiveDuration    = bounds{min: 1, hasMin: true, desc: "must be greater than 0"}
	nonNegativeDuration = bounds{min: 0, hasMin: true, desc: "must not be negative"}
)

func (b bounds) contains(n int64) bool {
	return (!b.hasMin || n >= b.min) && (!b.hasMax || n <= b.max)
}

// specs is the schema, in file order.
var specs = []spec{
	// [event_sourcing]
	{Key: Key{Section: "event_sourcing", Name: "enabled", Env: "EVENT_SOURCING_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Turns event sourcing on; false makes the writer refuse every command (503 event_sourcing_disabled, nothing appended) while its reads, the relay and the consumer groups keep working."},
		field: func(c *Config) any { return &c.EventSourcing.Enabled }},
	{Key: Key{Section: "event_sourcing", Name: "event_store_type", Env: "EVENT_STORE_TYPE", Kind: KindString, Default: "postgresql",
		Allowed: []string{StorePostgreSQL, StoreRedis, StoreMongoDB},
		Doc:     "Event store backend: postgresql, redis (EVENT_STORE_REDIS_URL) or mongodb (EVENT_STORE_MONGODB_URI). The read side (projections, inboxes, the schema catalog) stays on PostgreSQL with every backend."},
		field: func(c *Config) any { return &c.EventSourcing.StoreType }},
	{Key: Key{Section: "event_sourcing", Name: "snapshot_frequency", Env: "SNAPSHOT_FREQUENCY", Kind: KindInt, Default: "100",
		Doc: "Take an aggregate snapshot every N events of a stream."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.EventSourcing.SnapshotFrequency }},
	{Key: Key{Section: "event_sourcing", Name: "event_serialization", Env: "EVENT_SERIALIZATION", Kind: KindString, Default: "avro",
		Allowed: []string{"avro", "json", "msgpack", "protobuf"},
		Doc:     "Encoding of event values the relay writes to Kafka: Avro single-object encoding, JSON, MessagePack or Protocol Buffers; consumers read all four."},
		field: func(c *Config) any { return &c.EventSourcing.Serialization }},
	{Key: Key{Section: "event_sourcing", Name: "personal_data_key_file", Env: "PERSONAL_DATA_KEY_FILE", Kind: KindString, Default: "",
		Doc: "File holding the key (32 bytes in base64, a Secret mounted read-only) that wraps each user's data key: the writer then records emails and names encrypted with the user's data key, and DELETE /v1/users/{id}/personal-data erases them by destroying it; empty: they are recorded in clear and cannot be erased (a warning at start-up)."},
		field: func(c *Config) any { return &c.EventSourcing.PersonalDataKeyFile }},

	// [event_store]
	{Key: Key{Section: "event_store", Name: "url", Env: "DATABASE_URL", Kind: KindSecret, Default: "", Secure: true,
		Doc: "Full postgres:// URL of the event store; when set it wins over host, port, database, username, password, connection_pool and the ssl keys."},
		check: checkPostgresURL,
		field: func(c *Config) any { return &c.EventStore.URL }},
	{Key: Key{Section: "event_store", Name: "host", Env: "EVENT_STORE_HOST", Kind: KindString, Default: "127.0.0.1",
		Doc: "PostgreSQL host."},
		field: func(c *Config) any { return &c.EventStore.Host }},
	{Key: Key{Section: "event_store", Name: "port", Env: "EVENT_STORE_PORT", Kind: KindInt, Default: "55432",
		Doc: "PostgreSQL port."},
		bounds: between(1, 65535),
		field:  func(c *Config) any { return &c.EventStore.Port }},
	{Key: Key{Section: "event_store", Name: "database", Env: "EVENT_STORE_DATABASE", Kind: KindString, Default: "annals",
		Doc: "PostgreSQL database name."},
		field: func(c *Config) any { return &c.EventStore.Database }},
	{Key: Key{Section: "event_store", Name: "username", Env: "EVENT_STORE_USERNAME", Kind: KindString, Default: "annals",
		Doc: "PostgreSQL user."},
		field: func(c *Config) any { return &c.EventStore.Username }},
	{Key: Key{Section: "event_store", Name: "password", Env: "EVENT_STORE_PASSWORD", Kind: KindSecret, Default: "", Secure: true,
		Doc: "PostgreSQL password."},
		field: func(c *Config) any { return &c.EventStore.Password }},
	{Key: Key{Section: "event_store", Name: "connection_pool", Env: "EVENT_STORE_CONNECTION_POOL", Kind: KindInt, Default: "10",
		Doc: "Maximum number of pooled connections."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.EventStore.ConnectionPool }},
	{Key: Key{Section: "event_store", Name: "sslmode", Env: "EVENT_STORE_SSLMODE", Kind: KindString, Default: "prefer",
		Allowed: []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
		Doc:     "TLS to PostgreSQL, as libpq's sslmode: prefer tries TLS and falls back to plaintext; verify-full checks the server's certificate and host name. Used with the parts, not with DATABASE_URL (which says its own)."},
		field: func(c *Config) any { return &c.EventStore.SSLMode }},
	{Key: Key{Section: "event_store", Name: "sslrootcert", Env: "EVENT_STORE_SSLROOTCERT", Kind: KindString, Default: "",
		Doc: "PEM file of the CA certificates that sign the server's certificate (verify-ca, verify-full); empty: the system's roots."},
		field: func(c *Config) any { return &c.EventStore.SSLRootCert }},
	{Key: Key{Section: "event_store", Name: "sslcert", Env: "EVENT_STORE_SSLCERT", Kind: KindString, Default: "",
		Doc: "PEM file of the client certificate presented to the server (with EVENT_STORE_SSLKEY); empty: none."},
		field: func(c *Config) any { return &c.EventStore.SSLCert }},
	{Key: Key{Section: "event_store", Name: "sslkey", Env: "EVENT_STORE_SSLKEY", Kind: KindString, Default: "",
		Doc: "PEM file of the client certificate's private key."},
		field: func(c *Config) any { return &c.EventStore.SSLKey }},
	{Key: Key{Section: "event_store", Name: "redis_url", Env: "EVENT_STORE_REDIS_URL", Kind: KindSecret, Default: "", Secure: true,
		Doc: "redis:// or rediss:// URL of the Redis event store; required when EVENT_STORE_TYPE=redis."},
		check: checkRedisURL,
		field: func(c *Config) any { return &c.EventStore.RedisURL }},
	{Key: Key{Section: "event_store", Name: "redis_prefix", Env: "EVENT_STORE_REDIS_PREFIX", Kind: KindString, Default: "annals",
		Doc: "Prefix of every key of the Redis event store (a hash tag, so that all keys share one cluster slot)."},
		check: checkNotEmpty,
		field: func(c *Config) any { return &c.EventStore.RedisPrefix }},
	{Key: Key{Section: "event_store", Name: "mongodb_uri", Env: "EVENT_STORE_MONGODB_URI", Kind: KindSecret, Default: "", Secure: true,
		Doc: "mongodb:// or mongodb+srv:// URI of the MongoDB event store; required when EVENT_STORE_TYPE=mongodb."},
		check: checkMongoURI,
		field: func(c *Config) any { return &c.EventStore.MongoDBURI }},
	{Key: Key{Section: "event_store", Name: "mongodb_database", Env: "EVENT_STORE_MONGODB_DATABASE", Kind: KindString, Default: "annals",
		Doc: "Database of the MongoDB event store."},
		check: checkNotEmpty,
		field: func(c *Config) any { return &c.EventStore.MongoDBDatabase }},

	// [projections]
	{Key: Key{Section: "projections", Name: "enabled", Env: "PROJECTIONS_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Turns projections (read models) on."},
		field: func(c *Config) any { return &c.Projections.Enabled }},
	{Key: Key{Section: "projections", Name: "real_time", Env: "REAL_TIME_PROJECTIONS", Kind: KindBool, Default: "true",
		Doc: "Apply events to read models as they arrive; false makes the projector apply them in periodic batches, every PROJECTION_INTERVAL, draining what is there in batches of PROJECTION_BATCH_SIZE."},
		field: func(c *Config) any { return &c.Projections.RealTime }},
	{Key: Key{Section: "projections", Name: "batch_size", Env: "PROJECTION_BATCH_SIZE", Kind: KindInt, Default: "1000",
		Doc: "Maximum number of events applied per batch."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.Projections.BatchSize }},
	{Key: Key{Section: "projections", Name: "interval", Env: "PROJECTION_INTERVAL", Kind: KindDuration, Default: "5s",
		Doc: "With REAL_TIME_PROJECTIONS=false, the time between two rounds of the projector: it fetches and applies what has arrived at most this often, and read-your-writes waits (?min_version=) may take up to this long."},
		bounds: bounds{min: int64(100 * time.Millisecond), max: int64(30 * time.Second), hasMin: true, hasMax: true, desc: "must be between 100ms and 30s, the longest read-your-writes wait"},
		field:  func(c *Config) any { return &c.Projections.Interval }},
	{Key: Key{Section: "projections", Name: "parallel_processing", Env: "PARALLEL_PROJECTIONS", Kind: KindBool, Default: "true",
		Doc: "Process independent streams in parallel lanes (the projector and the notifier; the auditor always runs one lane, its hash chain taking one append at a time)."},
		field: func(c *Config) any { return &c.Projections.Parallel }},
	{Key: Key{Section: "projections", Name: "retry_attempts", Env: "PROJECTION_RETRY_ATTEMPTS", Kind: KindInt, Default: "3",
		Doc: "Retries of a failing event before it goes to the dead-letter topic."},
		bounds: atLeast(0),
		field:  func(c *Config) any { return &c.Projections.RetryAttempts }},
	{Key: Key{Section: "projections", Name: "inbox_retention", Env: "INBOX_RETENTION", Kind: KindDuration, Default: "7d",
		Doc: "How long the consumer groups' inbox (annals_inbox) remembers an applied event; the writer prunes older rows every hour. Keep it well above any time in which an event may be delivered again: one delivered after its row is gone is applied again, unless its handler has a guard of its own."},
		bounds: bounds{min: int64(time.Hour), hasMin: true, desc: "must be at least 1h"},
		field:  func(c *Config) any { return &c.Projections.InboxRetention }},

	// [aggregates]
	{Key: Key{Section: "aggregates", Name: "snapshot_enabled", Env: "AGGREGATE_SNAPSHOTS_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Store aggregate snapshots."},
		field: func(c *Config) any { return &c.Aggregates.SnapshotEnabled }},
	{Key: Key{Section: "aggregates", Name: "snapshot_retention", Env: "SNAPSHOT_RETENTION_PERIOD", Kind: KindDuration, Default: "30d",
		Doc: "How long superseded snapshots are kept."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Aggregates.SnapshotRetention }},
	{Key: Key{Section: "aggregates", Name: "optimistic_concurrency", Env: "OPTIMISTIC_CONCURRENCY", Kind: KindBool, Default: "true",
		Doc: "Reject appends whose expected version is stale."},
		field: func(c *Config) any { return &c.Aggregates.OptimisticConcurrency }},
	{Key: Key{Section: "aggregates", Name: "max_events_per_aggregate", Env: "MAX_EVENTS_PER_AGGREGATE", Kind: KindInt, Default: "10000",
		Doc: "Maximum number of events in one stream."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.Aggregates.MaxEventsPerAggregate }},
	{Key: Key{Section: "aggregates", Name: "max_event_bytes", Env: "MAX_EVENT_BYTES", Kind: KindInt, Default: "983040",
		Doc: "Largest event accepted, in bytes of data and metadata: an append with a larger one is refused (413 too_large) and appends nothing. " +
			"The default, 960 KiB, leaves 64 KiB of Kafka's default record limit (1 MiB) for what the record adds: key, headers, envelope fields and framing, a few KiB at most."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.Aggregates.MaxEventBytes }},

	// [handlers]
	{Key: Key{Section: "handlers", Name: "enabled", Env: "EVENT_HANDLERS_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Turns event handlers on."},
		field: func(c *Config) any { return &c.Handlers.Enabled }},
	{Key: Key{Section: "handlers", Name: "async_processing", Env: "ASYNC_EVENT_PROCESSING", Kind: KindBool, Default: "true",
		Doc: "Let the consumer groups run handlers in parallel lanes and overlap a commit with the next batch; false runs each group's handlers synchronously, one event at a time in partition order, in one lane, committing each batch before the next starts (CONSUMER_COMMIT_INTERVAL does not apply), never beside a handler."},
		field: func(c *Config) any { return &c.Handlers.AsyncProcessing }},
	{Key: Key{Section: "handlers", Name: "error_handling", Env: "EVENT_HANDLER_ERROR_HANDLING", Kind: KindBool, Default: "true",
		Doc: "Retry a failing event and then dead-letter it, blocking its stream; false stops the group at the first failing event instead: no retry, no dead letter, its partition paused and not committed past it until an operator releases it (annals dlq release, which tries it again)."},
		field: func(c *Config) any { return &c.Handlers.ErrorHandling }},
	{Key: Key{Section: "handlers", Name: "retry_failed_events", Env: "RETRY_FAILED_EVENTS", Kind: KindBool, Default: "true",
		Doc: "Retry events whose handler failed."},
		field: func(c *Config) any { return &c.Handlers.RetryFailedEvents }},

	// [monitoring]
	{Key: Key{Section: "monitoring", Name: "metrics_enabled", Env: "EVENT_SOURCING_METRICS_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Expose Prometheus metrics."},
		field: func(c *Config) any { return &c.Monitoring.MetricsEnabled }},
	{Key: Key{Section: "monitoring", Name: "event_tracking", Env: "EVENT_TRACKING_ENABLED", Kind: KindBool, Default: "true",
		Doc: "Export the series labelled by event type (the consumers' handler time per type); false leaves them out of /metrics."},
		field: func(c *Config) any { return &c.Monitoring.EventTracking }},
	{Key: Key{Section: "monitoring", Name: "performance_monitoring", Env: "EVENT_PERFORMANCE_MONITORING", Kind: KindBool, Default: "true",
		Doc: "Export the latency and size histograms; false leaves them out of /metrics."},
		field: func(c *Config) any { return &c.Monitoring.PerformanceMonitoring }},
	{Key: Key{Section: "monitoring", Name: "pprof_enabled", Env: "PPROF_ENABLED", Kind: KindBool, Default: "false",
		Doc: "Serve Go's runtime profiles (CPU, heap, goroutines, ...) at /debug/pprof/ on the service's HTTP port, for diagnosis; never on an address reachable from outside."},
		field: func(c *Config) any { return &c.Monitoring.PprofEnabled }},
	{Key: Key{Section: "monitoring", Name: "lag_exporter_enabled", Env: "LAG_EXPORTER_ENABLED", Kind: KindBool, Default: "true",
		Doc: "The writer exports the consumer groups' lag, read from the broker, on its /metrics."},
		field: func(c *Config) any { return &c.Monitoring.LagExporterEnabled }},
	{Key: Key{Section: "monitoring", Name: "lag_poll_interval", Env: "LAG_POLL_INTERVAL", Kind: KindDuration, Default: "10s",
		Doc: "Time between two polls of the broker by the lag exporter (the writer's and `annals lag-exporter`'s)."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Monitoring.LagPollInterval }},
	{Key: Key{Section: "monitoring", Name: "lag_status_window", Env: "LAG_STATUS_WINDOW", Kind: KindInt, Default: "10",
		Doc: "Number of polls a consumer group's lag status (ok, warn, stall, stop) is judged over."},
		bounds: atLeast(2),
		field:  func(c *Config) any { return &c.Monitoring.LagStatusWindow }},

	// Tracing: OpenTelemetry's own environment variables, with their meanings.
	{Key: Key{Section: "monitoring", Name: "otlp_endpoint", Env: "OTEL_EXPORTER_OTLP_ENDPOINT", Kind: KindString, Default: "",
		Doc: "Where the services send their OpenTelemetry traces: the base URL of an OTLP receiver (the collector or trace backend), such as http://127.0.0.1:4318 for OTLP/HTTP (the traces go to its /v1/traces) or http://127.0.0.1:4317 for gRPC. Empty turns tracing off."},
		check: checkOTLPEndpoint,
		field: func(c *Config) any { return &c.Monitoring.OTLPEndpoint }},
	{Key: Key{Section: "monitoring", Name: "otlp_protocol", Env: "OTEL_EXPORTER_OTLP_PROTOCOL", Kind: KindString, Default: "http/protobuf",
		Allowed: []string{"http/protobuf", "grpc"},
		Doc:     "The OTLP transport: http/protobuf or grpc."},
		field: func(c *Config) any { return &c.Monitoring.OTLPProtocol }},
	{Key: Key{Section: "monitoring", Name: "service_name", Env: "OTEL_SERVICE_NAME", Kind: KindString, Default: "",
		Doc: "The service name the traces carry; empty means annals-<service> (annals-writer, annals-projector, ...)."},
		field: func(c *Config) any { return &c.Monitoring.ServiceName }},
	{Key: Key{Section: "monitoring", Name: "traces_sampler", Env: "OTEL_TRACES_SAMPLER", Kind: KindString, Default: "parentbased_always_on",
		Allowed: []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"},
		Doc:     "Which traces are recorded: always_on, always_off, traceidratio (the share OTEL_TRACES_SAMPLER_ARG of the trace ids), or the parentbased_ variants, which follow the caller's decision when a request or record carries one."},
		field: func(c *Config) any { return &c.Monitoring.TracesSampler }},
	{Key: Key{Section: "monitoring", Name: "traces_sampler_arg", Env: "OTEL_TRACES_SAMPLER_ARG", Kind: KindString, Default: "1",
		Doc: "The share of traces the ratio samplers record, from 0 to 1."},
		check: checkRatio,
		field: func(c *Config) any { return &c.Monitoring.TracesSamplerArg }},

	// [kafka]
	{Key: Key{Section: "kafka", Name: "brokers", Env: "KAFKA_BROKERS", Kind: KindList, Default: "127.0.0.1:9092",
		Doc: "Comma-separated host:port bootstrap brokers."},
		check: checkBrokers,
		field: func(c *Config) any { return &c.Kafka.Brokers }},
	{Key: Key{Section: "kafka", Name: "topic_prefix", Env: "KAFKA_TOPIC_PREFIX", Kind: KindString, Default: "annals",
		Doc: "Topic prefix: events go to <prefix>.<category>, dead letters to <prefix>.dlq.<group>."},
		check: checkTopicPrefix,
		field: func(c *Config) any { return &c.Kafka.TopicPrefix }},
	{Key: Key{Section: "kafka", Name: "topic_partitions", Env: "KAFKA_TOPIC_PARTITIONS", Kind: KindInt, Default: "12",
		Doc: "Partitions of topics the services create."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.Kafka.TopicPartitions }},
	{Key: Key{Section: "kafka", Name: "replication_factor", Env: "KAFKA_REPLICATION_FACTOR", Kind: KindInt, Default: "1",
		Doc: "Replication factor of topics the services create."},
		bounds: atLeast(1),
		field:  func(c *Config) any { return &c.Kafka.ReplicationFactor }},
	{Key: Key{Section: "kafka", Name: "session_timeout", Env: "KAFKA_SESSION_TIMEOUT", Kind: KindDuration, Default: "10s",
		Doc: "How long the broker waits to hear from a consumer (the projector, the notifier, the auditor) before it evicts it from its group and gives its partitions to the others."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Kafka.SessionTimeout }},
	{Key: Key{Section: "kafka", Name: "consumer_drain_timeout", Env: "CONSUMER_DRAIN_TIMEOUT", Kind: KindDuration, Default: "6s",
		Doc: "How long the events a consumer has started may take to finish when it stops or its partitions move to another member (no other event starts meanwhile); must be shorter than KAFKA_SESSION_TIMEOUT minus the consumers' 1s heartbeat interval."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Kafka.DrainTimeout }},
	{Key: Key{Section: "kafka", Name: "consumer_commit_interval", Env: "CONSUMER_COMMIT_INTERVAL", Kind: KindDuration, Default: "1s",
		Doc: "How often, at most, a consumer commits its group's offsets while events keep coming (0s: after every batch); it commits at once when it runs out of events and before it gives up its partitions. A crash delivers up to about this much again, which the inboxes skip; each commit is a write to the broker."},
		bounds: bounds{min: 0, max: int64(30 * time.Second), hasMin: true, hasMax: true, desc: "must be between 0s (a commit after every batch) and 30s"},
		field:  func(c *Config) any { return &c.Kafka.CommitInterval }},
	{Key: Key{Section: "kafka", Name: "security_protocol", Env: "KAFKA_SECURITY_PROTOCOL", Kind: KindString, Default: "PLAINTEXT",
		Allowed: []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"},
		Doc:     "The protocol of the brokers' listener in KAFKA_BROKERS, as Kafka's security.protocol: TLS (SSL), SASL authentication (SASL_PLAINTEXT), both (SASL_SSL) or neither."},
		field: func(c *Config) any { return &c.Kafka.SecurityProtocol }},
	{Key: Key{Section: "kafka", Name: "sasl_mechanism", Env: "KAFKA_SASL_MECHANISM", Kind: KindString, Default: "",
		Doc: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with SASL_PLAINTEXT and SASL_SSL, empty otherwise."},
		check: checkSASLMechanism,
		field: func(c *Config) any { return &c.Kafka.SASLMechanism }},
	{Key: Key{Section: "kafka", Name: "sasl_username", Env: "KAFKA_SASL_USERNAME", Kind: KindString, Default: "",
		Doc: "SASL user name; required with SASL_PLAINTEXT and SASL_SSL, empty otherwise."},
		field: func(c *Config) any { return &c.Kafka.SASLUsername }},
	{Key: Key{Section: "kafka", Name: "sasl_password", Env: "KAFKA_SASL_PASSWORD", Kind: KindSecret, Default: "", Secure: true,
		Doc: "SASL password; required with SASL_PLAINTEXT and SASL_SSL, empty otherwise."},
		field: func(c *Config) any { return &c.Kafka.SASLPassword }},
	{Key: Key{Section: "kafka", Name: "tls_ca_file", Env: "KAFKA_TLS_CA_FILE", Kind: KindString, Default: "",
		Doc: "PEM file of the CA certificates that sign the brokers' certificates (SSL, SASL_SSL); empty: the system's roots. The brokers' host names are always verified."},
		field: func(c *Config) any { return &c.Kafka.TLSCAFile }},
	{Key: Key{Section: "kafka", Name: "tls_cert_file", Env: "KAFKA_TLS_CERT_FILE", Kind: KindString, Default: "",
		Doc: "PEM file of the client certificate presented to the brokers (mutual TLS), with KAFKA_TLS_KEY_FILE; empty: none."},
		field: func(c *Config) any { return &c.Kafka.TLSCertFile }},
	{Key: Key{Section: "kafka", Name: "tls_key_file", Env: "KAFKA_TLS_KEY_FILE", Kind: KindString, Default: "",
		Doc: "PEM file of the client certificate's private key."},
		field: func(c *Config) any { return &c.Kafka.TLSKeyFile }},

	// [relay]
	{Key: Key{Section: "relay", Name: "max_read_bytes", Env: "RELAY_MAX_READ_BYTES", Kind: KindInt, Default: "16777216",
		Doc: "Most bytes of event data and metadata the relay reads from the outbox at a time (16 MiB), so that a backlog of large events is published within a known memory; the appends of one transaction larger than this are read alone."},
		bounds: atLeast(1024),
		field:  func(c *Config) any { return &c.Relay.MaxReadBytes }},
	// [event_signing]
	{Key: Key{Section: "event_signing", Name: "key", Env: "EVENT_SIGNING_KEY", Kind: KindSecret, Default: "", Secure: true,
		Doc: "The key the relay signs every record with, written <id>:<secret> (a secret of at least 32 bytes, such as `openssl rand -base64 32` writes); the consumers accept it too."},
		check: checkSigningKey,
		field: func(c *Config) any { return &c.EventSigning.Key }},
	{Key: Key{Section: "event_signing", Name: "accepted_keys", Env: "EVENT_SIGNING_ACCEPTED_KEYS", Kind: KindSecret, Default: "", Secure: true,
		Doc: "More keys the consumers accept, comma-separated <id>:<secret>: the next key before the relay switches to it, or the previous one while records it signed remain."},
		check: checkSigningKeys,
		field: func(c *Config) any { return &c.EventSigning.AcceptedKeys }},
	{Key: Key{Section: "event_signing", Name: "required", Env: "EVENT_SIGNING_REQUIRED", Kind: KindBool, Default: "true",
		Doc: "The services refuse to start without a key, and consumers quarantine records without a valid signature; false (development, or while turning signing on) lets them start without one and accept unsigned records."},
		field: func(c *Config) any { return &c.EventSigning.Required }},

	// [smtp]
	{Key: Key{Section: "smtp", Name: "addr", Env: "SMTP_ADDR", Kind: KindString, Default: "127.0.0.1:1025",
		Doc: "host:port of the SMTP server."},
		check: checkDialAddr,
		field: func(c *Config) any { return &c.SMTP.Addr }},
	{Key: Key{Section: "smtp", Name: "from", Env: "SMTP_FROM", Kind: KindString, Default: "Annals <noreply@annals.local>",
		Doc: "Sender address of notifications."},
		check: checkMailAddress,
		field: func(c *Config) any { return &c.SMTP.From }},
	{Key: Key{Section: "smtp", Name: "username", Env: "SMTP_USERNAME", Kind: KindString, Default: "",
		Doc: "User name for SMTP AUTH; empty means no authentication."},
		field: func(c *Config) any { return &c.SMTP.Username }},
	{Key: Key{Section: "smtp", Name: "password", Env: "SMTP_PASSWORD", Kind: KindSecret, Default: "", Secure: true,
		Doc: "Password for SMTP AUTH."},
		field: func(c *Config) any { return &c.SMTP.Password }},
	{Key: Key{Section: "smtp", Name: "starttls", Env: "SMTP_STARTTLS", Kind: KindString, Default: "opportunistic",
		Allowed: []string{"none", "opportunistic", "required"},
		Doc:     "STARTTLS: never, when the server offers it, or always (refuse to send without it)."},
		field: func(c *Config) any { return &c.SMTP.StartTLS }},
	{Key: Key{Section: "smtp", Name: "timeout", Env: "SMTP_TIMEOUT", Kind: KindDuration, Default: "10s",
		Doc: "Limit on connecting to the SMTP server and on each exchange with it."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.SMTP.Timeout }},

	// [notifier]
	{Key: Key{Section: "notifier", Name: "templates_dir", Env: "NOTIFIER_TEMPLATES_DIR", Kind: KindString, Default: "",
		Doc: "Folder whose template files replace the notifier's built-in ones of the same name; empty means the built-in ones."},
		field: func(c *Config) any { return &c.Notifier.TemplatesDir }},
	{Key: Key{Section: "notifier", Name: "rate_limit", Env: "NOTIFIER_RATE_LIMIT", Kind: KindInt, Default: "100",
		Doc: "Most emails sent per second by one notifier process; 0 means no limit."},
		bounds: atLeast(0),
		field:  func(c *Config) any { return &c.Notifier.RateLimit }},
	{Key: Key{Section: "notifier", Name: "user_wait", Env: "NOTIFIER_USER_WAIT", Kind: KindDuration, Default: "30s",
		Doc: "How long an order email waits for its user's address before the notifier asks the event store: an unknown user's order goes to the dead-letter topic, a known one pauses the group until the directory has caught up."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Notifier.UserWait }},
	{Key: Key{Section: "notifier", Name: "emails_per_principal_hour", Env: "NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR", Kind: KindInt, Default: "1000",
		Doc: "Most emails the commands of one principal (the actor of an event: an API key, or a token's issuer and subject) recorded within one hour may cause, counted in the notifier's database across its processes; the others are not sent and are logged as suppressed. 0 means no limit."},
		bounds: atLeast(0),
		field:  func(c *Config) any { return &c.Notifier.EmailsPerPrincipalHour }},
	{Key: Key{Section: "notifier", Name: "batch_linger", Env: "NOTIFIER_BATCH_LINGER", Kind: KindDuration, Default: "20ms",
		Doc: "How long the notifier's batch waits to fill once it has an event, from 0s (it takes what has arrived) to 1s. At a low rate the notifier then handles a few events at each wake-up rather than one, which costs less processor time per event across the pipeline, and each email goes out up to this much later."},
		bounds: bounds{min: 0, max: int64(time.Second), hasMin: true, hasMax: true, desc: "must be between 0s and 1s"},
		field:  func(c *Config) any { return &c.Notifier.BatchLinger }},

	// [auditor]
	{Key: Key{Section: "auditor", Name: "batch_linger", Env: "AUDITOR_BATCH_LINGER", Kind: KindDuration, Default: "20ms",
		Doc: "How long the auditor's batch waits to fill once it has an event, from 0s (it takes what has arrived) to 1s. The log appends a batch in one transaction: at a low rate, where batches hold an event or two, waiting saves a commit for each event gathered, and each entry reaches the log up to this much later."},
		bounds: bounds{min: 0, max: int64(time.Second), hasMin: true, hasMax: true, desc: "must be between 0s and 1s"},
		field:  func(c *Config) any { return &c.Auditor.BatchLinger }},
	{Key: Key{Section: "auditor", Name: "verify_interval", Env: "AUDITOR_VERIFY_INTERVAL", Kind: KindDuration, Default: "1h",
		Doc: "How often the auditor verifies the whole audit log's hash chain and exports the outcome; 0 turns it off."},
		bounds: nonNegativeDuration,
		field:  func(c *Config) any { return &c.Auditor.VerifyInterval }},
	{Key: Key{Section: "auditor", Name: "checkpoint_key_file", Env: "AUDITOR_CHECKPOINT_KEY_FILE", Kind: KindString, Default: "",
		Doc: "PEM file (PKCS #8) of the Ed25519 private key the auditor signs checkpoints of the hash chain with, as `annals audit keygen` writes; empty: no checkpoints, and a warning at start."},
		field: func(c *Config) any { return &c.Auditor.CheckpointKeyFile }},
	{Key: Key{Section: "auditor", Name: "checkpoint_file", Env: "AUDITOR_CHECKPOINT_FILE", Kind: KindString, Default: "",
		Doc: "File the auditor appends each signed checkpoint to, one JSON line, synced; empty: checkpoints go to the log only, and the auditor cannot check its chain against them after a restart."},
		field: func(c *Config) any { return &c.Auditor.CheckpointFile }},
	{Key: Key{Section: "auditor", Name: "checkpoint_interval", Env: "AUDITOR_CHECKPOINT_INTERVAL", Kind: KindDuration, Default: "1m",
		Doc: "How often the auditor signs a checkpoint of the chain's head (and after a batch once that long has passed)."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Auditor.CheckpointInterval }},
	{Key: Key{Section: "auditor", Name: "checkpoint_public_key_file", Env: "AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE", Kind: KindString, Default: "",
		Doc: "PEM file (PKIX) of the checkpoints' Ed25519 public key, for `annals audit verify -checkpoints`; the auditor derives it from its private key."},
		field: func(c *Config) any { return &c.Auditor.CheckpointPublicKeyFile }},

	// [auth]
	{Key: Key{Section: "auth", Name: "disabled", Env: "AUTH_DISABLED", Kind: KindBool, Default: "false",
		Doc: "Turns authentication off: every request is served with every scope, and the service logs a warning at start. Local experiments only."},
		field: func(c *Config) any { return &c.Auth.Disabled }},
	{Key: Key{Section: "auth", Name: "api_keys", Env: "API_KEYS", Kind: KindSecret, Default: "", Secure: true,
		Doc: "Static API keys, comma-separated name:scope+scope:sha256hex, each the SHA-256 in hex of a key (the key itself is never configured); see Authentication."},
		check: checkAPIKeys,
		field: func(c *Config) any { return &c.Auth.APIKeys }},
	{Key: Key{Section: "auth", Name: "oidc_issuer", Env: "OIDC_ISSUER", Kind: KindString, Default: "",
		Doc: "The OpenID Connect issuer whose bearer tokens are accepted, exactly as the tokens' iss; empty: no tokens, API keys only."},
		check: checkIssuer,
		field: func(c *Config) any { return &c.Auth.OIDCIssuer }},
	{Key: Key{Section: "auth", Name: "oidc_audience", Env: "OIDC_AUDIENCE", Kind: KindString, Default: "",
		Doc: "A value the tokens' aud must contain (the client id the issuer gives the services); required with OIDC_ISSUER."},
		field: func(c *Config) any { return &c.Auth.OIDCAudience }},
	{Key: Key{Section: "auth", Name: "oidc_jwks_url", Env: "OIDC_JWKS_URL", Kind: KindString, Default: "",
		Doc: "The issuer's key set; empty: the jwks_uri of its discovery document, fetched on the first token."},
		check: checkOptionalURL,
		field: func(c *Config) any { return &c.Auth.OIDCJWKSURL }},
	{Key: Key{Section: "auth", Name: "oidc_algorithms", Env: "OIDC_ALGORITHMS", Kind: KindList, Default: "RS256,ES256",
		Doc: "The signature algorithms tokens may use; asymmetric only (RS*, PS*, ES*, EdDSA), never none or HS*."},
		check: checkAlgorithms,
		field: func(c *Config) any { return &c.Auth.OIDCAlgorithms }},
	{Key: Key{Section: "auth", Name: "oidc_scopes_claim", Env: "OIDC_SCOPES_CLAIM", Kind: KindString, Default: "scope",
		Doc: "The token claim that carries its scopes: a space-separated string or an array of strings (for example scope, scp or groups)."},
		field: func(c *Config) any { return &c.Auth.OIDCScopesClaim }},

	// [http]
	{Key: Key{Section: "http", Name: "addr", Env: "HTTP_ADDR", Kind: KindString, Default: "",
		Doc: "Listen address, host:port or :port; empty means the service's own default port."},
		check: checkListenAddr,
		field: func(c *Config) any { return &c.HTTP.Addr }},
	{Key: Key{Section: "http", Name: "shutdown_timeout", Env: "SHUTDOWN_TIMEOUT", Kind: KindDuration, Default: "15s",
		Doc: "How long a graceful shutdown may take."},
		bounds: nonNegativeDuration,
		field:  func(c *Config) any { return &c.HTTP.ShutdownTimeout }},

	// [log]
	{Key: Key{Section: "log", Name: "level", Env: "LOG_LEVEL", Kind: KindString, Default: "info",
		Allowed: []string{"debug", "info", "warn", "error"},
		Doc:     "Minimum log level."},
		field: func(c *Config) any { return &c.Log.Level }},
	{Key: Key{Section: "log", Name: "format", Env: "LOG_FORMAT", Kind: KindString, Default: "json",
		Allowed: []string{"json", "text"},
		Doc:     "Log output format."},
		field: func(c *Config) any { return &c.Log.Format }},

	// [writer]
	{Key: Key{Section: "writer", Name: "migrate_on_start", Env: "MIGRATE_ON_START", Kind: KindBool, Default: "false",
		Doc: "Apply the event store's migrations when a service starts (otherwise `annals migrate` does)."},
		field: func(c *Config) any { return &c.Writer.MigrateOnStart }},
	{Key: Key{Section: "writer", Name: "command_rate_limit", Env: "COMMAND_RATE_LIMIT", Kind: KindInt, Default: "100",
		Doc: "Most commands per second one principal (an API key, or a token's issuer and subject) may send to one writer process; more answer 429 rate_limited with Retry-After. 0 means no limit."},
		bounds: atLeast(0),
		field:  func(c *Config) any { return &c.Writer.CommandRateLimit }},
	{Key: Key{Section: "writer", Name: "command_rate_burst", Env: "COMMAND_RATE_BURST", Kind: KindInt, Default: "0",
		Doc: "Commands one principal may send at once, after a quiet spell, within COMMAND_RATE_LIMIT; 0 means COMMAND_RATE_LIMIT."},
		bounds: atLeast(0),
		field:  func(c *Config) any { return &c.Writer.CommandRateBurst }},
	{Key: Key{Section: "writer", Name: "feed_heartbeat_interval", Env: "FEED_HEARTBEAT_INTERVAL", Kind: KindDuration, Default: "15s",
		Doc: "How often GET /v1/subscribe sends a comment line to a subscriber that received nothing meanwhile, so that proxies and clients see the stream alive."},
		bounds: positiveDuration,
		field:  func(c *Config) any { return &c.Writer.FeedHeartbeatInterval }},
	{Key: Key{Section: "writer", Name: "feed_buffer", Env: "FEED_BUFFER", Kind: KindInt, Default: "256",
		Doc: "Events a subscriber of GET /v1/subscribe may fall behind before the writer drops it (event: dropped); it may resume with Last-Event-ID."},
		bounds: between(1, 100000),
		field:  func(c *Config) any { return &c.Writer.FeedBuffer }},
	{Key: Key{Section: "writer", Name: "feed_max_subscribers", Env: "FEED_MAX_SUBSCRIBERS", Kind: KindInt, Default: "1000",
		Doc: "Most subscribers of GET /v1/subscribe at once per writer process; more answer 503 unavailable with Retry-After."},
		bounds: between(1, 1000000),
		field:  func(c *Config) any { return &c.Writer.FeedMaxSubscribers }},
}

// Keys returns every known key, in file order.
func Keys() []Key {
	keys := make([]Key, len(specs))
	for i, s := range specs {
		keys[i] = s.Key
		keys[i].Allowed = slices.Clone(s.Allowed)
	}
	return keys
}

// EnvNames returns the environment variable of every known key, in file
// order.
func EnvNames() []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Env
	}
	return names
}

// LookupEnv returns the key overridden by the environment variable name.
func LookupEnv(name string) (Key, bool) {
	for _, s := range specs {
		if s.Env == name {
			k := s.Key
			k.Allowed = slices.Clone(s.Allowed)
			return k, true
		}
	}
	return Key{}, false
}

// lookupSpec returns the spec of section.name.
func lookupSpec(section, name string) (*spec, bool) {
	for i := range specs {
		if specs[i].Section == section && specs[i].Name == name {
			return &specs[i], true
		}
	}
	return nil, false
}

// sectionNames returns the known sections, in file order.
func sectionNames() []string {
	var names []string
	for _, s := range specs {
		if !slices.Contains(names, s.Section) {
			names = append(names, s.Section)
		}
	}
	return names
}

// keyNames returns the known keys of a section, in file order.
func keyNames(section string) []string {
	var names []string
	for _, s := range specs {
		if s.Section == section {
			names = append(names, s.Name)
		}
	}
	return names
}

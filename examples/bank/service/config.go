package service

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Config configures the service. Zero values take the defaults noted, which match the stack
// `make up` starts.
type Config struct {
	// HTTPAddr is where the API listens (HTTP_ADDR, "127.0.0.1:8090": this machine only, as
	// the example has no authentication); ":0" picks a free port.
	HTTPAddr string
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL,
	// "postgres://annals:annals@127.0.0.1:55432/annals?sslmode=disable").
	DatabaseURL string
	// Schema is the PostgreSQL schema of all the bank's tables, event store included
	// (DATABASE_SCHEMA, "bank"); it is created when missing. An event store's outbox holds
	// the appends of every domain that writes to it, and the relay that drains it must know
	// all their schemas: a domain of its own takes a schema (or a database) of its own.
	Schema string
	// Brokers are the Kafka brokers (KAFKA_BROKERS, comma-separated, "127.0.0.1:9092").
	Brokers []string
	// TopicPrefix names the topics (KAFKA_TOPIC_PREFIX, "bank"): the events go to
	// "<prefix>.account", the dead letters of the balances group to "<prefix>.dlq.<group>".
	TopicPrefix string
	// Partitions and ReplicationFactor are those of the topics the service creates
	// (KAFKA_TOPIC_PARTITIONS, 3; KAFKA_REPLICATION_FACTOR, 1).
	Partitions        int
	ReplicationFactor int
	// Group is the consumer group of the balances projection ("<prefix>-balances").
	Group string
	// Kafka is how the relay and the consumer connect to the brokers (KAFKA_SECURITY_PROTOCOL,
	// KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_TLS_CA_FILE,
	// KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE, as the Annals services name them); plaintext
	// by default.
	Kafka kafkasec.Security
	// SnapshotEvery takes an account snapshot every this many events (100); negative: never.
	SnapshotEvery int
}

// Environment names of the configuration.
const (
	EnvHTTPAddr          = "HTTP_ADDR"
	EnvDatabaseURL       = "DATABASE_URL"
	EnvSchema            = "DATABASE_SCHEMA"
	EnvBrokers           = "KAFKA_BROKERS"
	EnvTopicPrefix       = "KAFKA_TOPIC_PREFIX"
	EnvPartitions        = "KAFKA_TOPIC_PARTITIONS"
	EnvReplicationFactor = "KAFKA_REPLICATION_FACTOR"
)

// kafkaEnv names the environment variable of each field of kafkasec.Security.
var kafkaEnv = map[string]string{
	kafkasec.FieldBrokers:   EnvBrokers,
	kafkasec.FieldProtocol:  "KAFKA_SECURITY_PROTOCOL",
	kafkasec.FieldMechanism: "KAFKA_SASL_MECHANISM",
	kafkasec.FieldUsername:  "KAFKA_SASL_USERNAME",
	kafkasec.FieldPassword:  "KAFKA_SASL_PASSWORD",
	kafkasec.FieldCAFile:    "KAFKA_TLS_CA_FILE",
	kafkasec.FieldCertFile:  "KAFKA_TLS_CERT_FILE",
	kafkasec.FieldKeyFile:   "KAFKA_TLS_KEY_FILE",
}

// kafkaSetting is the environment variable of a field of kafkasec.Security.
func kafkaSetting(field string) string { return kafkaEnv[field] }

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.HTTPAddr, "127.0.0.1:8090")
	def(&c.DatabaseURL, "postgres://annals:annals@127.0.0.1:55432/annals?sslmode=disable")
	def(&c.Schema, "bank")
	def(&c.TopicPrefix, "bank")
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 100
	}
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// group is the balances projection's consumer group.
func (c Config) group() string {
	if c.Group != "" {
		return c.Group
	}
	return c.TopicPrefix + "-balances"
}

// Validate reports the first setting that cannot work, by its environment name.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case !identifier.MatchString(c.Schema):
		return fmt.Errorf("%s %q: want a lower-case SQL identifier", EnvSchema, c.Schema)
	case strings.ContainsAny(c.TopicPrefix, "/ ") || strings.HasPrefix(c.TopicPrefix, "."):
		return fmt.Errorf("%s %q: not a valid start of a topic name", EnvTopicPrefix, c.TopicPrefix)
	case c.ReplicationFactor > 32767:
		return errors.New(EnvReplicationFactor + ": too large")
	}
	for _, b := range c.Brokers {
		if b == "" {
			return errors.New(EnvBrokers + ": an empty broker address")
		}
	}
	if err := c.Kafka.Validate(); err != nil {
		var ce *kafkasec.ConfigError
		if errors.As(err, &ce) {
			return fmt.Errorf("%s: %s", kafkaSetting(ce.Field), ce.Msg)
		}
		return err
	}
	return nil
}

// ConfigFromEnv reads the configuration from the environment through getenv (os.Getenv).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		HTTPAddr:    getenv(EnvHTTPAddr),
		DatabaseURL: getenv(EnvDatabaseURL),
		Schema:      getenv(EnvSchema),
		TopicPrefix: getenv(EnvTopicPrefix),
		Kafka: kafkasec.Security{
			Protocol:  kafkasec.Protocol(strings.ToUpper(getenv(kafkaEnv[kafkasec.FieldProtocol]))),
			Mechanism: kafkasec.Mechanism(strings.ToUpper(getenv(kafkaEnv[kafkasec.FieldMechanism]))),
			Username:  getenv(kafkaEnv[kafkasec.FieldUsername]),
			Password:  getenv(kafkaEnv[kafkasec.FieldPassword]),
			CAFile:    getenv(kafkaEnv[kafkasec.FieldCAFile]),
			CertFile:  getenv(kafkaEnv[kafkasec.FieldCertFile]),
			KeyFile:   getenv(kafkaEnv[kafkasec.FieldKeyFile]),
		},
	}
	if s := getenv(EnvBrokers); s != "" {
		c.Brokers = strings.Split(s, ",")
	}
	for _, n := range []struct {
		name string
		to   *int
	}{{EnvPartitions, &c.Partitions}, {EnvReplicationFactor, &c.ReplicationFactor}} {
		if s := getenv(n.name); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				return Config{}, fmt.Errorf("%s %q: want a whole number of at least 1", n.name, s)
			}
			*n.to = v
		}
	}
	c.setDefaults()
	return c, nil
}

// RegisterFlags binds flags to c's fields, with c's values as their defaults: flags beat the
// environment.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "addr", c.HTTPAddr, "listen address of the HTTP API ("+EnvHTTPAddr+")")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL connection string ("+EnvDatabaseURL+")")
	fs.StringVar(&c.Schema, "schema", c.Schema, "PostgreSQL schema of the bank's tables, created when missing ("+EnvSchema+")")
	fs.Func("brokers", "comma-separated Kafka brokers ("+EnvBrokers+", default "+strings.Join(c.Brokers, ",")+")", func(s string) error {
		c.Brokers = strings.Split(s, ",")
		return nil
	})
	fs.StringVar(&c.TopicPrefix, "topic-prefix", c.TopicPrefix, "prefix of the Kafka topics ("+EnvTopicPrefix+")")
	fs.StringVar(&c.Group, "group", c.Group, "consumer group of the balances projection (default <topic-prefix>-balances)")
}

package service_test

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/annals-dev/annals/examples/bank/service"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("Defaults", func(t *testing.T) {
		c, err := service.ConfigFromEnv(env(nil))
		must(t, err)
		if c.HTTPAddr != "127.0.0.1:8090" || c.Schema != "bank" || c.TopicPrefix != "bank" || !slices.Equal(c.Brokers, []string{"127.0.0.1:9092"}) ||
			c.Partitions != 3 || c.ReplicationFactor != 1 || !strings.Contains(c.DatabaseURL, "127.0.0.1:55432") {
			t.Errorf("config = %+v", c)
		}
		if got := c.Topics(); got[0].Name != "bank.account" || got[1].Name != "bank.dlq.bank-balances" {
			t.Errorf("topics = %+v", got)
		}
	})
	t.Run("EnvThenFlags", func(t *testing.T) {
		c, err := service.ConfigFromEnv(env(map[string]string{
			service.EnvBrokers: "k1:9092,k2:9092", service.EnvTopicPrefix: "acme", service.EnvPartitions: "6",
		}))
		must(t, err)
		fs := flag.NewFlagSet("bankd", flag.ContinueOnError)
		c.RegisterFlags(fs)
		must(t, fs.Parse([]string{"-schema", "acme_bank", "-addr", "127.0.0.1:0"}))
		if !slices.Equal(c.Brokers, []string{"k1:9092", "k2:9092"}) || c.Partitions != 6 || c.Schema != "acme_bank" || c.HTTPAddr != "127.0.0.1:0" {
			t.Errorf("config = %+v", c)
		}
		if got := c.Topics(); got[0].Name != "acme.account" || got[1].Name != "acme.dlq.acme-balances" || got[0].Partitions != 6 {
			t.Errorf("topics = %+v", got)
		}
		must(t, c.Validate())
	})
	t.Run("KafkaSecurity", func(t *testing.T) {
		c, err := service.ConfigFromEnv(env(map[string]string{
			"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-256", "KAFKA_SASL_USERNAME": "bank",
			"KAFKA_SASL_PASSWORD": "pw", "KAFKA_TLS_CA_FILE": "/ca.crt",
		}))
		must(t, err)
		want := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA256, Username: "bank", Password: "pw", CAFile: "/ca.crt"}
		if c.Kafka != want {
			t.Errorf("Kafka = %s, want %s", c.Kafka, want)
		}
		must(t, c.Validate())
	})
	for _, tc := range []struct{ name, key, value string }{
		{"BadPartitions", service.EnvPartitions, "many"},
		{"ZeroReplicas", service.EnvReplicationFactor, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := service.ConfigFromEnv(env(map[string]string{tc.key: tc.value})); err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error = %v, want one naming %s", err, tc.key)
			}
		})
	}
	for _, tc := range []struct {
		name string
		cfg  service.Config
		want string
	}{
		{"Schema", service.Config{Schema: "Bank; drop"}, service.EnvSchema},
		{"TopicPrefix", service.Config{TopicPrefix: "a b"}, service.EnvTopicPrefix},
		{"Broker", service.Config{Brokers: []string{""}}, service.EnvBrokers},
		{"KafkaSASLWithoutPassword", service.Config{Kafka: kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "bank"}},
			"KAFKA_SASL_PASSWORD: required with SASL_SSL"},
	} {
		t.Run("Invalid"+tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

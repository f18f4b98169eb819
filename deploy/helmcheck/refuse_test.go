package helmcheck

import (
	"strings"
	"testing"
)

// TestChartRefuses: values that would deploy something broken stop the install, with a
// message that names the values to change. The schema catches misspelt keys and wrong
// types; the templates catch the rules that span several values.
func TestChartRefuses(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string // a part of Helm's error
	}{
		// values.schema.json
		{"misspelt key", values("writer.replicaCont", 3), "additional properties 'replicaCont' not allowed"},
		{"misspelt top-level key", values("kafak.brokers", []any{"kafka:9092"}), "additional properties 'kafak' not allowed"},
		{"misspelt nested key", values("projector.keda.lagTreshold", 10), "additional properties 'lagTreshold' not allowed"},
		{"unknown configuration key", values("config.PROJECTION_BATCH", 10), "additional properties 'PROJECTION_BATCH' not allowed"},
		{"secret in config", values("config.EVENT_STORE_PASSWORD", "x"), "additional properties 'EVENT_STORE_PASSWORD' not allowed"},
		{"key with a value of its own in config", values("config.KAFKA_TOPIC_PARTITIONS", 6), "additional properties 'KAFKA_TOPIC_PARTITIONS' not allowed"},
		{"string for an integer", values("kafka.topicPartitions", "twelve"), "want integer"},
		{"string for a boolean", values("writer.autoscaling.enabled", "yes"), "want boolean"},
		{"number for a string", values("database.host", 5), "want string"},
		{"list for a string", values("kafka.topicPrefix", []any{"annals"}), "want string"},
		{"configuration value of the wrong type", values("config.PROJECTION_BATCH_SIZE", "many"), "want integer"},
		{"configuration value not allowed", values("config.EVENT_SERIALIZATION", "xml"), "EVENT_SERIALIZATION"},
		{"bad duration", values("smtp.timeout", "ten seconds"), "smtp/timeout"},
		{"unknown email template", values("notifier.templates", map[string]any{"goodbye.subject.tmpl": "x"}), "goodbye.subject.tmpl"},
		{"log level not allowed", values("log.level", "verbose"), "log/level"},
		{"signing key without an id", values("signing.key", "0123456789abcdef0123456789abcdef01"), "signing/key"},
		{"signing key too short", values("signing.key", "k1:short"), "signing/key"},

		// templates/validate.yaml
		{"hpa and keda together", values("projector.autoscaling.enabled", true, "projector.keda.enabled", true),
			"projector: autoscaling.enabled and keda.enabled are both true"},
		{"replicas above the partitions", values("projector.replicaCount", 13),
			"projector.replicaCount is 13, more than kafka.topicPartitions (12)"},
		{"fewer partitions than replicas", values("kafka.topicPartitions", 1),
			"projector.replicaCount is 2, more than kafka.topicPartitions (1)"},
		{"hpa maximum above the partitions", values("notifier.autoscaling.enabled", true, "notifier.autoscaling.maxReplicas", 16),
			"notifier.autoscaling.maxReplicas is 16, more than kafka.topicPartitions (12)"},
		{"keda maximum above the partitions", values("auditor.keda.enabled", true, "auditor.keda.maxReplicas", 24),
			"auditor.keda.maxReplicas is 24, more than kafka.topicPartitions (12)"},
		{"keda minimum above its maximum", values("auditor.keda.enabled", true, "auditor.keda.minReplicas", 5, "auditor.keda.maxReplicas", 4),
			"auditor.keda: minReplicas (5) is greater than maxReplicas (4)"},
		{"hpa minimum above its maximum", values("writer.autoscaling.enabled", true, "writer.autoscaling.minReplicas", 8),
			"writer.autoscaling: minReplicas (8) is greater than maxReplicas (6)"},
		{"both disruption limits", values("writer.podDisruptionBudget.minAvailable", 1),
			"writer.podDisruptionBudget: set exactly one of minAvailable and maxUnavailable"},
		{"password with existingSecret", values("existingSecret", "mine", "database.password", "x"),
			`database.password is set together with existingSecret "mine"`},
		{"signing key with existingSecret", values("existingSecret", "mine", "signing.key", "k1:0123456789abcdef0123456789abcdef"),
			`signing.key is set together with existingSecret "mine"`},
		{"SMTP password without a user", values("smtp.password", "x"),
			"smtp.password is set but smtp.username is empty"},
		{"unknown Kafka protocol", values("kafka.securityProtocol", "TLS"), "kafka/securityProtocol"},
		{"unknown SASL mechanism", values("kafka.securityProtocol", "SASL_SSL", "kafka.sasl.mechanism", "GSSAPI"), "kafka/sasl/mechanism"},
		{"unknown sslmode", values("database.sslmode", "on"), "database/sslmode"},
		{"Redis URL with existingSecret", values("existingSecret", "mine", "eventStore.redisUrl", "redis://redis:6379/0"),
			`eventStore.redisUrl is set together with existingSecret "mine"`},
		{"Redis store without its URL", values("config", map[string]any{"EVENT_STORE_TYPE": "redis"}),
			"config.EVENT_STORE_TYPE is redis: set eventStore.redisUrl"},
		{"MongoDB store without its URI", values("config", map[string]any{"EVENT_STORE_TYPE": "mongodb"}),
			"config.EVENT_STORE_TYPE is mongodb: set eventStore.mongodbUri"},
		{"Kafka password with existingSecret", values("existingSecret", "mine", "kafka.securityProtocol", "SASL_SSL",
			"kafka.sasl.mechanism", "PLAIN", "kafka.sasl.username", "u", "kafka.sasl.password", "x"),
			`kafka.sasl.password is set together with existingSecret "mine"`},
		{"SASL without a mechanism", values("kafka.securityProtocol", "SASL_SSL", "kafka.sasl.username", "u"),
			"kafka.securityProtocol is SASL_SSL: set kafka.sasl.mechanism and kafka.sasl.username"},
		{"SASL values without SASL", values("kafka.securityProtocol", "SSL", "kafka.sasl.username", "u"),
			"kafka.sasl is set, but kafka.securityProtocol SSL does not use SASL"},
		{"Kafka TLS Secret without TLS", values("kafka.tls.caSecret", "kafka-ca"),
			"kafka.tls is set, but kafka.securityProtocol PLAINTEXT does not use TLS"},
		{"PostgreSQL TLS Secret with sslmode disable", values("database.sslmode", "disable", "database.tls.caSecret", "pg-ca"),
			"database.tls is set, but database.sslmode is disable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values, kedaAPI, monitoringAPI)
			if err == nil {
				t.Fatalf("the chart renders; want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// TestKafkaRefused: a command that talks to Kafka stops within seconds when the brokers
// refuse its settings, with one line that names the setting at fault and what was expected.
func TestKafkaRefused(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	tlsBroker := (&testenv.FakeKafka{TLS: ca.ServerTLS(t)}).Start(t)
	saslBroker := (&testenv.FakeKafka{TLS: ca.ServerTLS(t), Mechanisms: []string{"SCRAM-SHA-512"}, RequireSASL: true}).Start(t)
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"TopicsPlaintextAgainstTLS", map[string]string{"KAFKA_BROKERS": tlsBroker}, []string{"topics"},
			"its listener expects TLS, and KAFKA_SECURITY_PROTOCOL=PLAINTEXT has none"},
		{"LagUntrusted", map[string]string{"KAFKA_BROKERS": tlsBroker, "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CA_FILE": testenv.NewCA(t, "other").CertFile},
			[]string{"lag"}, "is not trusted by KAFKA_TLS_CA_FILE="},
		{"ReplayMechanism", map[string]string{"KAFKA_BROKERS": saslBroker, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_TLS_CA_FILE": ca.CertFile,
			"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "ops", "KAFKA_SASL_PASSWORD": "ops-pw-93c1"},
			[]string{"replay", "--group", "annals-projector", "--since", "1h", "--dry-run"}, "does not enable the SASL mechanism KAFKA_SASL_MECHANISM=PLAIN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, tt.env, tt.args...)
			if took := time.Since(start); took > 8*time.Second {
				t.Errorf("the command took %s, want a few seconds", took)
			}
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tt.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one:\n%s", n+1, stderr)
			}
			if strings.Contains(stderr, "ops-pw-93c1") {
				t.Errorf("stderr shows the password: %s", stderr)
			}
		})
	}
	t.Run("MissingCAFile", func(t *testing.T) {
		code, _, stderr := runCLI(t, map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CA_FILE": "/nowhere/ca.crt"}, "topics")
		if code != 1 || !strings.Contains(stderr, "KAFKA_TLS_CA_FILE (kafka.tls_ca_file): cannot read CA certificates") {
			t.Fatalf("exit %d, stderr %q; want 1 naming KAFKA_TLS_CA_FILE", code, stderr)
		}
	})
}

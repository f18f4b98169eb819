package app_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

const kafkaPassword = "kafka-pw-e7a41b"

// TestOpen_KafkaRefuses: a service whose Kafka settings the brokers refuse stops at start,
// within seconds, with one error that names the setting at fault and what was expected,
// and never the password; a service whose brokers cannot be reached starts (an outage is
// waited out, not a setting).
func TestOpen_KafkaRefuses(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	sasl := map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN",
		"KAFKA_SASL_USERNAME": "projector", "KAFKA_SASL_PASSWORD": kafkaPassword, "KAFKA_TLS_CA_FILE": ca.CertFile}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		broker *testenv.FakeKafka
		env    map[string]string
		want   []string
	}{
		{"Authentication", &testenv.FakeKafka{TLS: ca.ServerTLS(t), Mechanisms: []string{"PLAIN"}, Password: "another", RequireSASL: true}, sasl,
			[]string{`kafka: SASL authentication failed for user "projector"`, "(KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD, with KAFKA_SASL_MECHANISM=PLAIN)"}},
		{"Mechanism", &testenv.FakeKafka{TLS: ca.ServerTLS(t), Mechanisms: []string{"SCRAM-SHA-512"}, RequireSASL: true}, sasl,
			[]string{"does not enable the SASL mechanism KAFKA_SASL_MECHANISM=PLAIN"}},
		{"Untrusted", &testenv.FakeKafka{TLS: testenv.NewCA(t, "other").ServerTLS(t), Mechanisms: []string{"PLAIN"}, Password: kafkaPassword}, sasl,
			[]string{"is not trusted by KAFKA_TLS_CA_FILE=" + ca.CertFile, "x509: certificate signed by unknown authority"}},
		{"PlaintextAgainstTLS", &testenv.FakeKafka{TLS: ca.ServerTLS(t)}, map[string]string{},
			[]string{"its listener expects TLS, and KAFKA_SECURITY_PROTOCOL=PLAINTEXT has none"}},
		{"TLSAgainstPlaintext", &testenv.FakeKafka{}, with(nil, "KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_TLS_CA_FILE", ca.CertFile),
			[]string{"does not speak TLS on this listener, but KAFKA_SECURITY_PROTOCOL=SSL expects it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := with(tt.env, "DATABASE_URL", "postgres://annals@"+closedPort(t)+"/annals?sslmode=disable", "KAFKA_BROKERS", tt.broker.Start(t))
			m, err := app.New(app.Projector, []string{"-addr", "127.0.0.1:0"}, envFunc(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			start := time.Now()
			err = m.Open(context.Background())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Open took %s, want a few seconds at most", took)
			}
			if err == nil {
				t.Fatal("Open() = nil, want the brokers' refusal")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open() = %v\nwant it to say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), kafkaPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
			var refused *kafkasec.Error
			if !errors.As(err, &refused) {
				t.Errorf("Open() error %T does not wrap the *kafkasec.Error", err)
			}
		})
	}
	t.Run("Unreachable", func(t *testing.T) {
		env := with(sasl, "DATABASE_URL", "postgres://annals@"+closedPort(t)+"/annals?sslmode=disable", "KAFKA_BROKERS", closedPort(t))
		m, err := app.New(app.Projector, []string{"-addr", "127.0.0.1:0"}, envFunc(env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Open(context.Background()); err != nil {
			t.Fatalf("Open() = %v, want the service to start and wait for its brokers", err)
		}
	})
	t.Run("Accepted", func(t *testing.T) {
		broker := &testenv.FakeKafka{TLS: ca.ServerTLS(t), Mechanisms: []string{"PLAIN"}, Password: kafkaPassword, RequireSASL: true}
		env := with(sasl, "DATABASE_URL", "postgres://annals@"+closedPort(t)+"/annals?sslmode=disable", "KAFKA_BROKERS", broker.Start(t))
		m, err := app.New(app.Projector, []string{"-addr", "127.0.0.1:0"}, envFunc(env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Open(context.Background()); err != nil {
			t.Fatalf("Open() = %v", err)
		}
	})
}

// TestNew_KafkaFiles: a CA file that does not exist stops the service before anything opens,
// naming the key.
func TestNew_KafkaFiles(t *testing.T) {
	_, err := app.New(app.Writer, nil, envFunc(map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CA_FILE": "/nowhere/ca.crt"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "KAFKA_TLS_CA_FILE (kafka.tls_ca_file): cannot read CA certificates from \"/nowhere/ca.crt\"") {
		t.Fatalf("New() = %v, want an error naming KAFKA_TLS_CA_FILE", err)
	}
}

// TestKafkaReachable_Refused: readiness says which setting the brokers refuse, and why.
func TestKafkaReachable_Refused(t *testing.T) {
	broker := &testenv.FakeKafka{Mechanisms: []string{"PLAIN"}, Password: "another", RequireSASL: true}
	k := config.Default().Kafka
	k.Brokers = []string{broker.Start(t)}
	k.SecurityProtocol, k.SASLMechanism, k.SASLUsername, k.SASLPassword = "SASL_PLAINTEXT", "PLAIN", "notifier", kafkaPassword
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := app.KafkaReachable(ctx, k)
	if err == nil || !strings.Contains(err.Error(), `SASL authentication failed for user "notifier"`) || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD") {
		t.Fatalf("KafkaReachable() = %v, want the refusal naming the settings", err)
	}
	if strings.Contains(err.Error(), kafkaPassword) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestRun_WorkerRefused: a component that stops because the brokers refuse it ends the
// service with an error that names the settings, not the library's field names.
func TestRun_WorkerRefused(t *testing.T) {
	m, err := app.New(app.Projector, []string{"-addr", "127.0.0.1:0"}, envFunc(map[string]string{
		"DATABASE_URL": "postgres://annals@" + closedPort(t) + "/annals?sslmode=disable", "KAFKA_BROKERS": closedPort(t),
		"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "projector", "KAFKA_SASL_PASSWORD": kafkaPassword,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Go("consumer", func(context.Context) error {
		return &kafkasec.Error{Fault: kafkasec.FaultAuthorization, Operation: "Read", Resource: `topic "annals.user"`, Security: m.Config.Kafka.Security()}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = m.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `do not grant User:projector (KAFKA_SASL_USERNAME) Read on topic "annals.user"`) {
		t.Fatalf("Run() = %v, want the refusal naming the settings", err)
	}
}

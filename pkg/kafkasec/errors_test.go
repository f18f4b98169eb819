package kafkasec_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

func TestClassify(t *testing.T) {
	s := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "projector", Password: "s3cret"}
	tests := []struct {
		name string
		err  error
		want kafkasec.Fault // "": returned unchanged
	}{
		{"SASLAuthenticationFailed", fmt.Errorf("could not successfully authenticate to 127.0.0.1:9192 with SASL: %w", kafka.SASLAuthenticationFailed), kafkasec.FaultAuthentication},
		{"UnsupportedSASLMechanism", fmt.Errorf("SASL handshake failed: %w", kafka.UnsupportedSASLMechanism), kafkasec.FaultMechanism},
		{"IllegalSASLState", fmt.Errorf("SASL handshake failed: %w", kafka.IllegalSASLState), kafkasec.FaultSASLNotEnabled},
		{"TopicAuthorizationFailed", fmt.Errorf("metadata: %w", kafka.TopicAuthorizationFailed), kafkasec.FaultAuthorization},
		{"InWriteErrors", kafka.WriteErrors{nil, fmt.Errorf("x: %w", kafka.TopicAuthorizationFailed)}, kafkasec.FaultAuthorization},
		{"Joined", errors.Join(io.EOF, kafka.GroupAuthorizationFailed), kafkasec.FaultAuthorization},
		{"EOF", fmt.Errorf("failed to dial: %w", io.EOF), ""},
		{"Timeout", context.DeadlineExceeded, ""},
		{"OtherKafkaError", kafka.NotLeaderForPartition, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kafkasec.Classify(tt.err, s)
			var e *kafkasec.Error
			switch {
			case tt.want == "":
				if got != tt.err {
					t.Errorf("Classify(%v) = %v, want it unchanged", tt.err, got)
				}
			case !errors.As(got, &e) || e.Fault != tt.want:
				t.Errorf("Classify(%v) = %v, want an *Error of %s", tt.err, got, tt.want)
			case fmt.Sprint(e.Err) != fmt.Sprint(tt.err):
				t.Errorf("Classify(%v) does not wrap the error: %v", tt.err, e.Err)
			}
		})
	}
	if err := kafkasec.Classify(nil, s); err != nil {
		t.Errorf("Classify(nil) = %v", err)
	}
}

func TestDenied(t *testing.T) {
	s := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "relay", Password: "s3cret"}
	access := kafkasec.Access{Operation: "Write", Topic: "annals.user", Group: "annals-projector"}
	tests := []struct {
		name          string
		err           error
		wantOperation string
		wantResource  string
	}{
		{"Topic", fmt.Errorf("annals.user[3]: %w", kafka.TopicAuthorizationFailed), "Write", `topic "annals.user"`},
		{"Group", fmt.Errorf("join: %w", kafka.GroupAuthorizationFailed), "Read", `group "annals-projector"`},
		{"Cluster", fmt.Errorf("create: %w", kafka.ClusterAuthorizationFailed), "Write", "the cluster"},
		{"InWriteErrors", kafka.WriteErrors{kafka.TopicAuthorizationFailed}, "Write", `topic "annals.user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kafkasec.Denied(tt.err, access, s)
			var e *kafkasec.Error
			if !errors.As(err, &e) || e.Fault != kafkasec.FaultAuthorization {
				t.Fatalf("Denied() = %v, want an *Error of authorization", err)
			}
			if e.Operation != tt.wantOperation || e.Resource != tt.wantResource {
				t.Errorf("got %s on %s, want %s on %s", e.Operation, e.Resource, tt.wantOperation, tt.wantResource)
			}
			msg := err.Error()
			for _, want := range []string{tt.wantOperation + " on " + tt.wantResource, "User:relay"} {
				if !strings.Contains(msg, want) {
					t.Errorf("got %q, want it to say %q", msg, want)
				}
			}
			if !kafkasec.IsAuthorization(err) {
				t.Error("IsAuthorization() = false")
			}
		})
	}
	t.Run("NotAuthorization", func(t *testing.T) {
		for _, err := range []error{nil, io.EOF, kafka.NotLeaderForPartition, kafka.SASLAuthenticationFailed} {
			if got := kafkasec.Denied(err, access, s); got != err {
				t.Errorf("Denied(%v) = %v, want it unchanged", err, got)
			}
			if kafkasec.IsAuthorization(err) {
				t.Errorf("IsAuthorization(%v) = true", err)
			}
		}
	})
	t.Run("Anonymous", func(t *testing.T) {
		err := kafkasec.Denied(kafka.TopicAuthorizationFailed, kafkasec.Access{Operation: "Read", Topic: "t"}, kafkasec.Security{})
		if !strings.Contains(err.Error(), "User:ANONYMOUS") {
			t.Errorf("got %v, want the principal User:ANONYMOUS", err)
		}
	})
}

func TestError_Describe(t *testing.T) {
	env := map[string]string{
		kafkasec.FieldBrokers: "KAFKA_BROKERS", kafkasec.FieldProtocol: "KAFKA_SECURITY_PROTOCOL", kafkasec.FieldMechanism: "KAFKA_SASL_MECHANISM",
		kafkasec.FieldUsername: "KAFKA_SASL_USERNAME", kafkasec.FieldPassword: "KAFKA_SASL_PASSWORD", kafkasec.FieldCAFile: "KAFKA_TLS_CA_FILE",
		kafkasec.FieldCertFile: "KAFKA_TLS_CERT_FILE", kafkasec.FieldKeyFile: "KAFKA_TLS_KEY_FILE",
	}
	name := func(f string) string {
		if n, ok := env[f]; ok {
			return n
		}
		t.Errorf("Describe asked for field %q, which Security does not have", f)
		return f
	}
	s := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "projector", Password: "s3cret", CAFile: "/etc/kafka/ca.crt"}
	tests := []struct {
		fault kafkasec.Fault
		s     kafkasec.Security
		want  []string
	}{
		{kafkasec.FaultAuthentication, s, []string{`SASL authentication failed for user "projector" at broker b:9093`, "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD", "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"}},
		{kafkasec.FaultMechanism, s, []string{"KAFKA_SASL_MECHANISM=SCRAM-SHA-512"}},
		{kafkasec.FaultSASLNotEnabled, s, []string{"KAFKA_SECURITY_PROTOCOL=SASL_SSL", "KAFKA_BROKERS"}},
		{kafkasec.FaultExpectsSASL, kafkasec.Security{Protocol: kafkasec.SSL}, []string{"KAFKA_SECURITY_PROTOCOL=SSL", "SASL_SSL"}},
		{kafkasec.FaultUntrusted, s, []string{"not trusted by KAFKA_TLS_CA_FILE=/etc/kafka/ca.crt"}},
		{kafkasec.FaultUntrusted, kafkasec.Security{Protocol: kafkasec.SSL}, []string{"system's roots", "KAFKA_TLS_CA_FILE is empty"}},
		{kafkasec.FaultHostname, s, []string{"KAFKA_BROKERS", "cannot be turned off"}},
		{kafkasec.FaultExpired, s, []string{"expired"}},
		{kafkasec.FaultClientCertificate, kafkasec.Security{Protocol: kafkasec.SSL}, []string{"KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE are empty"}},
		{kafkasec.FaultClientCertificate, kafkasec.Security{Protocol: kafkasec.SSL, CertFile: "/c.crt", KeyFile: "/c.key"}, []string{"KAFKA_TLS_CERT_FILE=/c.crt", "KAFKA_TLS_KEY_FILE"}},
		{kafkasec.FaultNotTLS, s, []string{"does not speak TLS", "KAFKA_SECURITY_PROTOCOL=SASL_SSL"}},
		{kafkasec.FaultExpectsTLS, kafkasec.Security{}, []string{"expects TLS", "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"}},
		{kafkasec.FaultAuthorization, s, []string{"User:projector (KAFKA_SASL_USERNAME)"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			e := &kafkasec.Error{Fault: tt.fault, Broker: "b:9093", Security: tt.s, Err: errors.New("cause")}
			got := e.Describe(name)
			for _, want := range append(tt.want, "b:9093", ": cause") {
				if !strings.Contains(got, want) {
					t.Errorf("got %q, want it to say %q", got, want)
				}
			}
			if strings.Contains(got, "s3cret") || strings.Contains(e.Error(), "s3cret") {
				t.Errorf("the message quotes the password: %s", got)
			}
			if !strings.Contains(e.Error(), "Security.") && tt.fault != kafkasec.FaultExpired && tt.fault != kafkasec.FaultHostname {
				t.Errorf("Error() = %q, want the fields named as Security's", e.Error())
			}
		})
	}
}

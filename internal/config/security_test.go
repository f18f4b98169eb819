package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

const saslPassword = "kafka-pw-0c9d2e"

// loadErrors loads the environment kv and returns the lines of the error.
func loadErrors(t *testing.T, kv ...string) []string {
	t.Helper()
	_, err := config.Load("", env(kv...))
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), saslPassword) {
		t.Errorf("the error shows the password: %v", err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestLoad_KafkaSecurity(t *testing.T) {
	sasl := []string{"KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME", "projector", "KAFKA_SASL_PASSWORD", saslPassword}
	tests := []struct {
		name string
		kv   []string
		want []string
	}{
		{"Plaintext", nil, nil},
		{"SASLSSL", sasl, nil},
		{"LowerCaseProtocol", []string{"KAFKA_SECURITY_PROTOCOL", "ssl"}, nil},
		{"SSLWithFiles", []string{"KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_TLS_CA_FILE", "/ca.crt", "KAFKA_TLS_CERT_FILE", "/c.crt", "KAFKA_TLS_KEY_FILE", "/c.key"}, nil},
		{"UnknownProtocol", []string{"KAFKA_SECURITY_PROTOCOL", "TLS"}, []string{
			`KAFKA_SECURITY_PROTOCOL (kafka.security_protocol): "TLS" is not supported; allowed: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL`,
		}},
		{"SASLWithoutCredentials", []string{"KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"}, []string{
			`KAFKA_SASL_MECHANISM (kafka.sasl_mechanism): required with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)`,
			`KAFKA_SASL_USERNAME (kafka.sasl_username): required with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`,
			`KAFKA_SASL_PASSWORD (kafka.sasl_password): required with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`,
		}},
		{"UnknownMechanism", append(sasl[:2:2], "KAFKA_SASL_MECHANISM", "GSSAPI", "KAFKA_SASL_USERNAME", "u", "KAFKA_SASL_PASSWORD", saslPassword), []string{
			`KAFKA_SASL_MECHANISM (kafka.sasl_mechanism): "GSSAPI" is not supported; allowed: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`,
		}},
		{"PlaintextWithSASLCredentials", []string{"KAFKA_SASL_USERNAME", "projector", "KAFKA_SASL_PASSWORD", saslPassword}, []string{
			`KAFKA_SASL_USERNAME (kafka.sasl_username): set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL (SASL_PLAINTEXT or SASL_SSL does)`,
			`KAFKA_SASL_PASSWORD (kafka.sasl_password): set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL`,
		}},
		{"SSLWithMechanism", []string{"KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_SASL_MECHANISM", "PLAIN"}, []string{
			`KAFKA_SASL_MECHANISM (kafka.sasl_mechanism): set, but KAFKA_SECURITY_PROTOCOL=SSL does not use SASL`,
		}},
		{"PlaintextWithCAFile", []string{"KAFKA_TLS_CA_FILE", "/ca.crt"}, []string{
			`KAFKA_TLS_CA_FILE (kafka.tls_ca_file): set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS (SSL or SASL_SSL does)`,
		}},
		{"CertificateWithoutKey", append(sasl, "KAFKA_TLS_CERT_FILE", "/c.crt"), []string{
			`KAFKA_TLS_KEY_FILE (kafka.tls_key_file): required with KAFKA_TLS_CERT_FILE (kafka.tls_cert_file)`,
		}},
		{"KeyWithoutCertificate", []string{"KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_TLS_KEY_FILE", "/c.key"}, []string{
			`KAFKA_TLS_CERT_FILE (kafka.tls_cert_file): required with KAFKA_TLS_KEY_FILE (kafka.tls_key_file)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadErrors(t, tt.kv...)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("error %d:\ngot  %s\nwant %s", i, got[i], want)
				}
			}
		})
	}
}

func TestLoad_EventStoreTLS(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
		want []string
	}{
		{"VerifyFull", []string{"EVENT_STORE_SSLMODE", "verify-full", "EVENT_STORE_SSLROOTCERT", "/ca.crt", "EVENT_STORE_SSLCERT", "/c.crt", "EVENT_STORE_SSLKEY", "/c.key"}, nil},
		{"UnknownMode", []string{"EVENT_STORE_SSLMODE", "on"}, []string{
			`EVENT_STORE_SSLMODE (event_store.sslmode): "on" is not supported; allowed: disable, allow, prefer, require, verify-ca, verify-full`,
		}},
		{"DisableWithFiles", []string{"EVENT_STORE_SSLMODE", "disable", "EVENT_STORE_SSLROOTCERT", "/ca.crt"}, []string{
			`EVENT_STORE_SSLROOTCERT (event_store.sslrootcert): set, but EVENT_STORE_SSLMODE=disable uses no TLS`,
		}},
		{"CertificateWithoutKey", []string{"EVENT_STORE_SSLCERT", "/c.crt"}, []string{
			`EVENT_STORE_SSLKEY (event_store.sslkey): required with EVENT_STORE_SSLCERT (event_store.sslcert)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadErrors(t, tt.kv...)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("error %d:\ngot  %s\nwant %s", i, got[i], want)
				}
			}
		})
	}
}

func TestConnString_TLS(t *testing.T) {
	base := config.EventStore{Host: "db.example", Port: 5432, Database: "annals", Username: "annals", ConnectionPool: 4}
	tests := []struct {
		name string
		set  func(s *config.EventStore)
		want string
	}{
		{"NoModeIsDisable", func(*config.EventStore) {}, "postgres://annals@db.example:5432/annals?sslmode=disable&pool_max_conns=4"},
		{"Prefer", func(s *config.EventStore) { s.SSLMode = "prefer" }, "postgres://annals@db.example:5432/annals?sslmode=prefer&pool_max_conns=4"},
		{"VerifyFullWithFiles", func(s *config.EventStore) {
			s.SSLMode, s.SSLRootCert, s.SSLCert, s.SSLKey = "verify-full", "/etc/pg/ca.crt", "/etc/pg/client dir/tls.crt", "/etc/pg/tls&.key"
		}, "postgres://annals@db.example:5432/annals?sslmode=verify-full&sslrootcert=%2Fetc%2Fpg%2Fca.crt&sslcert=%2Fetc%2Fpg%2Fclient+dir%2Ftls.crt&sslkey=%2Fetc%2Fpg%2Ftls%26.key&pool_max_conns=4"},
		{"URLWins", func(s *config.EventStore) {
			s.URL, s.SSLMode, s.SSLRootCert = "postgres://x@y/z?sslmode=disable", "verify-full", "/ca.crt"
		}, "postgres://x@y/z?sslmode=disable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.set(&s)
			if got := s.ConnString(); got != tt.want {
				t.Errorf("\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// writeCA writes a self-signed CA certificate, and returns its file and a key file.
func writeCA(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestConfig_CheckFiles(t *testing.T) {
	ca, key := writeCA(t)
	otherCA, otherKey := writeCA(t)
	missing := filepath.Join(t.TempDir(), "missing.crt")
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ssl := []string{"KAFKA_SECURITY_PROTOCOL", "SSL"}
	tests := []struct {
		name string
		kv   []string
		want []string // substrings of the one error; nil: no error
	}{
		{"Plaintext", nil, nil},
		{"SystemRoots", ssl, nil},
		{"CAFile", append(ssl, "KAFKA_TLS_CA_FILE", ca), nil},
		{"ClientCertificate", append(ssl, "KAFKA_TLS_CERT_FILE", ca, "KAFKA_TLS_KEY_FILE", key), nil},
		{"CAFileMissing", append(ssl, "KAFKA_TLS_CA_FILE", missing), []string{"configuration: KAFKA_TLS_CA_FILE (kafka.tls_ca_file): cannot read CA certificates from", "no such file"}},
		{"CAFileWithoutCertificate", append(ssl, "KAFKA_TLS_CA_FILE", notPEM), []string{"KAFKA_TLS_CA_FILE (kafka.tls_ca_file)", "no PEM certificate"}},
		{"KeyNotTheCertificates", append(ssl, "KAFKA_TLS_CERT_FILE", ca, "KAFKA_TLS_KEY_FILE", otherKey), []string{"KAFKA_TLS_KEY_FILE (kafka.tls_key_file)"}},
		{"CertFileMissing", append(ssl, "KAFKA_TLS_CERT_FILE", missing, "KAFKA_TLS_KEY_FILE", key), []string{"KAFKA_TLS_CERT_FILE (kafka.tls_cert_file)"}},
		{"PostgresRootCert", []string{"EVENT_STORE_SSLMODE", "verify-full", "EVENT_STORE_SSLROOTCERT", otherCA}, nil},
		{"PostgresRootCertMissing", []string{"EVENT_STORE_SSLMODE", "verify-full", "EVENT_STORE_SSLROOTCERT", missing},
			[]string{"EVENT_STORE_SSLROOTCERT (event_store.sslrootcert)", "no such file"}},
		{"PostgresKeyMissing", []string{"EVENT_STORE_SSLCERT", ca, "EVENT_STORE_SSLKEY", missing}, []string{"EVENT_STORE_SSLKEY (event_store.sslkey)", "no such file"}},
		{"PostgresFilesWithURL", []string{"DATABASE_URL", "postgres://u@h/d", "EVENT_STORE_SSLROOTCERT", missing}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load("", env(tt.kv...))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckFiles()
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("CheckFiles() = %v", err)
			case tt.want != nil && err == nil:
				t.Fatal("CheckFiles() = nil")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want it to say %q", err, want)
				}
			}
		})
	}
}

func TestKafka_Security(t *testing.T) {
	c, err := config.Load("", env("KAFKA_SECURITY_PROTOCOL", "sasl_ssl", "KAFKA_SASL_MECHANISM", "PLAIN", "KAFKA_SASL_USERNAME", "writer",
		"KAFKA_SASL_PASSWORD", saslPassword, "KAFKA_TLS_CA_FILE", "/ca.crt", "KAFKA_TLS_CERT_FILE", "/c.crt", "KAFKA_TLS_KEY_FILE", "/c.key"))
	if err != nil {
		t.Fatal(err)
	}
	want := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.Plain, Username: "writer", Password: saslPassword,
		CAFile: "/ca.crt", CertFile: "/c.crt", KeyFile: "/c.key"}
	if got := c.Kafka.Security(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := config.Default().Kafka.Security(); got != (kafkasec.Security{Protocol: kafkasec.Plaintext}) {
		t.Errorf("default: got %s, want PLAINTEXT", got)
	}
	if err := c.Kafka.Security().Validate(); err != nil {
		t.Errorf("a configuration that loads is a valid Security: %v", err)
	}
}

func TestExplainKafka(t *testing.T) {
	sec := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "projector", Password: saslPassword, CAFile: "/etc/ca.crt"}
	t.Run("Error", func(t *testing.T) {
		cause := fmt.Errorf("could not authenticate: %w", kafka.SASLAuthenticationFailed)
		err := config.ExplainKafka(&kafkasec.Error{Fault: kafkasec.FaultAuthentication, Broker: "b:9093", Security: sec, Err: cause})
		want := `kafka: SASL authentication failed for user "projector" at broker b:9093 (KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD, with KAFKA_SASL_MECHANISM=SCRAM-SHA-512)`
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("got  %s\nwant %s...", err, want)
		}
		var e *kafkasec.Error
		if !errors.As(err, &e) || !errors.Is(err, kafka.SASLAuthenticationFailed) {
			t.Error("the explained error does not wrap the *kafkasec.Error and its cause")
		}
		if strings.Contains(err.Error(), saslPassword) {
			t.Errorf("the error shows the password: %v", err)
		}
	})
	t.Run("ConfigError", func(t *testing.T) {
		_, err := kafkasec.Security{Protocol: kafkasec.SSL, CAFile: "/nowhere/ca.crt"}.TLSConfig()
		got := config.ExplainKafka(err).Error()
		if want := `configuration: KAFKA_TLS_CA_FILE (kafka.tls_ca_file): cannot read CA certificates from "/nowhere/ca.crt": open /nowhere/ca.crt: no such file or directory`; got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
	t.Run("Other", func(t *testing.T) {
		for _, err := range []error{nil, io.EOF} {
			if got := config.ExplainKafka(err); got != err {
				t.Errorf("ExplainKafka(%v) = %v, want it unchanged", err, got)
			}
		}
	})
	t.Run("Settings", func(t *testing.T) {
		for field, want := range map[string]string{kafkasec.FieldBrokers: "KAFKA_BROKERS", kafkasec.FieldProtocol: "KAFKA_SECURITY_PROTOCOL",
			kafkasec.FieldMechanism: "KAFKA_SASL_MECHANISM", kafkasec.FieldUsername: "KAFKA_SASL_USERNAME", kafkasec.FieldPassword: "KAFKA_SASL_PASSWORD",
			kafkasec.FieldCAFile: "KAFKA_TLS_CA_FILE", kafkasec.FieldCertFile: "KAFKA_TLS_CERT_FILE", kafkasec.FieldKeyFile: "KAFKA_TLS_KEY_FILE"} {
			if got := config.KafkaSetting(field); got != want {
				t.Errorf("KafkaSetting(%s) = %s, want %s", field, got, want)
			}
		}
	})
}

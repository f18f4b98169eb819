package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Security is how the Kafka clients connect, for pkg/kafkasec (and the library's Config
// structs that take one).
func (k Kafka) Security() kafkasec.Security {
	return kafkasec.Security{
		Protocol:  kafkasec.Protocol(k.SecurityProtocol),
		Mechanism: kafkasec.Mechanism(k.SASLMechanism),
		Username:  k.SASLUsername,
		Password:  k.SASLPassword.Reveal(),
		CAFile:    k.TLSCAFile,
		CertFile:  k.TLSCertFile,
		KeyFile:   k.TLSKeyFile,
	}
}

// kafkaFields maps the fields of kafkasec.Security to the keys that set them.
var kafkaFields = map[string]string{
	kafkasec.FieldBrokers:   "brokers",
	kafkasec.FieldProtocol:  "security_protocol",
	kafkasec.FieldMechanism: "sasl_mechanism",
	kafkasec.FieldUsername:  "sasl_username",
	kafkasec.FieldPassword:  "sasl_password",
	kafkasec.FieldCAFile:    "tls_ca_file",
	kafkasec.FieldCertFile:  "tls_cert_file",
	kafkasec.FieldKeyFile:   "tls_key_file",
}

// KafkaSetting is the environment variable that sets a field of kafkasec.Security
// (kafkasec.FieldProtocol is KAFKA_SECURITY_PROTOCOL, ...), for kafkasec.Error.Describe.
func KafkaSetting(field string) string {
	if s, ok := lookupSpec("kafka", kafkaFields[field]); ok {
		return s.Env
	}
	return field
}

// ExplainKafka names the settings at fault in an error of the Kafka clients: a
// *kafkasec.Error (a broker refusing the client's security or permissions) reads with the
// environment variables of the settings involved, and what they were expected to be; a
// *kafkasec.ConfigError names its key. The result wraps err. Any other error is returned
// unchanged.
func ExplainKafka(err error) error {
	var e *kafkasec.Error
	if errors.As(err, &e) {
		return &explained{msg: e.Describe(KafkaSetting), err: err}
	}
	var ce *kafkasec.ConfigError
	if errors.As(err, &ce) {
		s, _ := lookupSpec("kafka", kafkaFields[ce.Field])
		msg := "configuration: " + s.Env + " (" + s.Path() + "): " + ce.Msg
		if ce.Err != nil {
			msg += ": " + ce.Err.Error()
		}
		return &explained{msg: msg, err: err}
	}
	return err
}

// explained is an error whose message names the settings at fault.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// validateSecurity checks that the Kafka security keys fit together (the protocol and the
// mechanism each have checked their own values).
func (k Kafka) validateSecurity() []error {
	var errs []error
	spec := func(name string) *spec { s, _ := lookupSpec("kafka", name); return s }
	bad := func(name, format string, args ...any) {
		s := spec(name)
		errs = append(errs, fmt.Errorf("%s (%s): %s", s.Env, s.Path(), fmt.Sprintf(format, args...)))
	}
	p := kafkasec.Protocol(k.SecurityProtocol)
	protocol := "KAFKA_SECURITY_PROTOCOL=" + k.SecurityProtocol
	if p.SASL() {
		if k.SASLMechanism == "" {
			bad("sasl_mechanism", "required with %s (one of %s)", protocol, mechanisms())
		}
		if k.SASLUsername == "" {
			bad("sasl_username", "required with %s", protocol)
		}
		if k.SASLPassword == "" {
			bad("sasl_password", "required with %s", protocol)
		}
	} else {
		for _, f := range []struct {
			name string
			set  bool
		}{{"sasl_mechanism", k.SASLMechanism != ""}, {"sasl_username", k.SASLUsername != ""}, {"sasl_password", k.SASLPassword != ""}} {
			if f.set {
				bad(f.name, "set, but %s does not use SASL (SASL_PLAINTEXT or SASL_SSL does)", protocol)
			}
		}
	}
	if !p.TLS() {
		for _, f := range []struct{ name, path string }{{"tls_ca_file", k.TLSCAFile}, {"tls_cert_file", k.TLSCertFile}, {"tls_key_file", k.TLSKeyFile}} {
			if f.path != "" {
				bad(f.name, "set, but %s does not use TLS (SSL or SASL_SSL does)", protocol)
			}
		}
	} else {
		switch {
		case k.TLSCertFile != "" && k.TLSKeyFile == "":
			bad("tls_key_file", "required with KAFKA_TLS_CERT_FILE (kafka.tls_cert_file): the client certificate's private key")
		case k.TLSCertFile == "" && k.TLSKeyFile != "":
			bad("tls_cert_file", "required with KAFKA_TLS_KEY_FILE (kafka.tls_key_file): the client certificate of that key")
		}
	}
	return errs
}

func mechanisms() string {
	var names []string
	for _, m := range kafkasec.Mechanisms() {
		names = append(names, string(m))
	}
	return strings.Join(names, ", ")
}

// checkSASLMechanism accepts an empty mechanism or one the clients support.
func checkSASLMechanism(v any, hide bool) string {
	s := v.(string)
	if s == "" {
		return ""
	}
	for _, m := range kafkasec.Mechanisms() {
		if s == string(m) {
			return ""
		}
	}
	return show(s, hide) + " is not supported; allowed: " + mechanisms()
}

// validateTLS checks that the PostgreSQL TLS keys fit together.
func (s EventStore) validateTLS() []error {
	var errs []error
	files := []struct{ name, path string }{{"sslrootcert", s.SSLRootCert}, {"sslcert", s.SSLCert}, {"sslkey", s.SSLKey}}
	for _, f := range files {
		if f.path != "" && s.SSLMode == "disable" {
			sp, _ := lookupSpec("event_store", f.name)
			errs = append(errs, fmt.Errorf("%s (%s): set, but EVENT_STORE_SSLMODE=disable uses no TLS", sp.Env, sp.Path()))
		}
	}
	switch {
	case s.SSLCert != "" && s.SSLKey == "":
		errs = append(errs, errors.New("EVENT_STORE_SSLKEY (event_store.sslkey): required with EVENT_STORE_SSLCERT (event_store.sslcert): the client certificate's private key"))
	case s.SSLCert == "" && s.SSLKey != "":
		errs = append(errs, errors.New("EVENT_STORE_SSLCERT (event_store.sslcert): required with EVENT_STORE_SSLKEY (event_store.sslkey): the client certificate of that key"))
	}
	return errs
}

// CheckFiles reads the TLS files that the configuration names and checks them: the Kafka CA
// file holds a certificate, the Kafka client certificate loads with its key, and the
// PostgreSQL files (when the connection is built from the parts) can be read, the root
// certificate file holding a certificate. It is the one place where this package reads a file
// it was not given: programs call it right after Load, so that a missing or wrong file stops
// them at start with the key's name. It returns every problem, joined.
func (c *Config) CheckFiles() error {
	var errs []error
	if kafkasec.Protocol(c.Kafka.SecurityProtocol).TLS() {
		for _, err := range unjoin(c.Kafka.Security().CheckFiles()) {
			errs = append(errs, ExplainKafka(err))
		}
	}
	if s := c.EventStore; s.URL == "" && s.SSLMode != "disable" {
		if s.SSLRootCert != "" {
			if _, err := kafkasec.LoadCAFile(s.SSLRootCert); err != nil { // any PEM file of CA certificates
				errs = append(errs, fmt.Errorf("configuration: EVENT_STORE_SSLROOTCERT (event_store.sslrootcert): cannot read CA certificates from %q: %w", s.SSLRootCert, err))
			}
		}
		for _, f := range []struct{ name, path string }{{"sslcert", s.SSLCert}, {"sslkey", s.SSLKey}} {
			if f.path == "" {
				continue
			}
			if fh, err := os.Open(f.path); err != nil {
				sp, _ := lookupSpec("event_store", f.name)
				errs = append(errs, fmt.Errorf("configuration: %s (%s): %w", sp.Env, sp.Path(), err))
			} else {
				_ = fh.Close()
			}
		}
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

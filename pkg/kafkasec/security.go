package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Protocol is Kafka's security.protocol: whether a connection uses TLS, SASL, both or
// neither. It must be the protocol of the broker's listener that the client dials.
type Protocol string

// The protocols of Kafka's listeners.
const (
	Plaintext     Protocol = "PLAINTEXT"
	SSL           Protocol = "SSL"
	SASLPlaintext Protocol = "SASL_PLAINTEXT"
	SASLSSL       Protocol = "SASL_SSL"
)

// Protocols are the protocols a Security may name, in the order Kafka documents them.
func Protocols() []Protocol { return []Protocol{Plaintext, SSL, SASLPlaintext, SASLSSL} }

// TLS reports whether connections of the protocol use TLS.
func (p Protocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether connections of the protocol authenticate with SASL.
func (p Protocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// Mechanism is a SASL mechanism, as Kafka's sasl.mechanism names it.
type Mechanism string

// The SASL mechanisms the clients support.
const (
	Plain       Mechanism = "PLAIN"
	ScramSHA256 Mechanism = "SCRAM-SHA-256"
	ScramSHA512 Mechanism = "SCRAM-SHA-512"
)

// Mechanisms are the SASL mechanisms a Security may name.
func Mechanisms() []Mechanism { return []Mechanism{Plain, ScramSHA256, ScramSHA512} }

// Security is how the Kafka clients connect to the brokers. The zero value is plaintext: no
// TLS, no SASL.
type Security struct {
	// Protocol is the listener's protocol; "" means Plaintext.
	Protocol Protocol
	// Mechanism, Username and Password authenticate with SASL; required with SASLPlaintext
	// and SASLSSL, and must be empty otherwise.
	Mechanism Mechanism
	Username  string
	Password  string
	// CAFile is a PEM file of the certificates that sign the brokers' certificates; ""
	// means the system's roots. CertFile and KeyFile, together, are a PEM certificate and
	// its key that the client presents (mutual TLS). All three are for SSL and SASLSSL only.
	CAFile   string
	CertFile string
	KeyFile  string
}

// protocol is s's protocol, Plaintext for "".
func (s Security) protocol() Protocol {
	if s.Protocol == "" {
		return Plaintext
	}
	return s.Protocol
}

// ConfigError is a Security that cannot work: Field names the field at fault ("Protocol",
// "Mechanism", "Username", "Password", "CAFile", "CertFile", "KeyFile"). Its message never
// quotes a password.
type ConfigError struct {
	Field string
	Msg   string
	Err   error // the file's error, for CAFile, CertFile and KeyFile
}

func (e *ConfigError) Error() string {
	if e.Err != nil {
		return "kafka security: " + e.Field + ": " + e.Msg + ": " + e.Err.Error()
	}
	return "kafka security: " + e.Field + ": " + e.Msg
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks that the fields fit together, without reading any file: a known protocol;
// with SASL, a known mechanism, a user name and a password; without SASL, none of them; without
// TLS, no file; a certificate with its key. Every problem is a *ConfigError; all are returned,
// joined.
func (s Security) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	p := s.protocol()
	known := false
	for _, q := range Protocols() {
		known = known || p == q
	}
	if !known {
		bad("Protocol", "%q is not a protocol (one of %s)", string(p), join(Protocols()))
		return errors.Join(errs...)
	}
	if p.SASL() {
		switch {
		case s.Mechanism == "":
			bad("Mechanism", "required with %s (one of %s)", p, join(Mechanisms()))
		case !knownMechanism(s.Mechanism):
			bad("Mechanism", "%q is not a supported SASL mechanism (one of %s)", string(s.Mechanism), join(Mechanisms()))
		}
		if s.Username == "" {
			bad("Username", "required with %s", p)
		}
		if s.Password == "" {
			bad("Password", "required with %s", p)
		}
	} else {
		for _, f := range []struct {
			name string
			set  bool
		}{{"Mechanism", s.Mechanism != ""}, {"Username", s.Username != ""}, {"Password", s.Password != ""}} {
			if f.set {
				bad(f.name, "set, but %s does not use SASL (SASL_PLAINTEXT or SASL_SSL does)", p)
			}
		}
	}
	if !p.TLS() {
		for _, f := range []struct{ name, path string }{{"CAFile", s.CAFile}, {"CertFile", s.CertFile}, {"KeyFile", s.KeyFile}} {
			if f.path != "" {
				bad(f.name, "set, but %s does not use TLS (SSL or SASL_SSL does)", p)
			}
		}
	} else {
		switch {
		case s.CertFile != "" && s.KeyFile == "":
			bad("KeyFile", "required with a client certificate (CertFile)")
		case s.CertFile == "" && s.KeyFile != "":
			bad("CertFile", "required with a client key (KeyFile)")
		}
	}
	return errors.Join(errs...)
}

func knownMechanism(m Mechanism) bool {
	for _, k := range Mechanisms() {
		if m == k {
			return true
		}
	}
	return false
}

func join[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, v := range list {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// LoadCAFile reads a PEM file of CA certificates into a pool. A file that does not exist, or
// that holds no certificate, is an error.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// LoadKeyPair reads a PEM certificate (with its chain) and its private key.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return c, nil
}

// CheckFiles reads the files s names and checks them: a CA file with at least one
// certificate, a certificate and a key that belong together. Each problem is a *ConfigError.
func (s Security) CheckFiles() error {
	_, err := s.TLSConfig()
	return err
}

// TLSConfig is the TLS configuration of s's connections, nil when its protocol does not use
// TLS. The server's certificate is verified against CAFile (or the system's roots) and the
// host name of each connection; the client presents CertFile when set. TLS 1.2 at least.
func (s Security) TLSConfig() (*tls.Config, error) {
	if !s.protocol().TLS() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pool, err := LoadCAFile(s.CAFile)
		if err != nil {
			return nil, &ConfigError{Field: "CAFile", Msg: "cannot read CA certificates from " + strconv.Quote(s.CAFile), Err: err}
		}
		cfg.RootCAs = pool
	}
	if s.CertFile != "" || s.KeyFile != "" {
		if s.CertFile == "" || s.KeyFile == "" {
			return nil, &ConfigError{Field: "CertFile", Msg: "a client certificate needs both CertFile and KeyFile"}
		}
		c, err := LoadKeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, &ConfigError{Field: keyPairFault(s.CertFile, s.KeyFile, err),
				Msg: fmt.Sprintf("cannot load the client certificate %q with its key %q", s.CertFile, s.KeyFile), Err: err}
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// keyPairFault names the file at fault when a certificate and its key do not load: the one
// that cannot be read, the certificate when it holds none, otherwise the key (none in the
// file, or not the certificate's).
func keyPairFault(certFile, keyFile string, err error) string {
	switch {
	case fileMissing(certFile):
		return "CertFile"
	case fileMissing(keyFile):
		return "KeyFile"
	case strings.Contains(err.Error(), "certificate input"):
		return "CertFile"
	}
	return "KeyFile"
}

func fileMissing(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	_ = f.Close()
	return false
}

// SASL is the SASL mechanism of s's connections, nil when its protocol does not use SASL.
func (s Security) SASL() (sasl.Mechanism, error) {
	if !s.protocol().SASL() {
		return nil, nil
	}
	switch s.Mechanism {
	case Plain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case ScramSHA256, ScramSHA512:
		algo := scram.SHA256
		if s.Mechanism == ScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// The error of SASLprep may quote what it refused: say which field, not why.
			return nil, &ConfigError{Field: "Username", Msg: "the user name or the password cannot be used with " + string(s.Mechanism) + " (SASLprep refuses it)"}
		}
		return m, nil
	}
	return nil, &ConfigError{Field: "Mechanism", Msg: fmt.Sprintf("%q is not a supported SASL mechanism (one of %s)", string(s.Mechanism), join(Mechanisms()))}
}

// build validates s and loads what its connections need.
func (s Security) build() (*tls.Config, sasl.Mechanism, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	t, err := s.TLSConfig()
	if err != nil {
		return nil, nil, err
	}
	m, err := s.SASL()
	if err != nil {
		return nil, nil, err
	}
	return t, m, nil
}

// DialTimeout is the connection timeout of the dialers Dialer returns, as kafka.DefaultDialer's.
const DialTimeout = 10 * time.Second

// Dialer returns a dialer with s's security for kafka.ReaderConfig, kafka.ConsumerGroupConfig
// and direct connections (DialContext, DialLeader). It validates s and reads its files
// first; a problem is a *ConfigError.
func (s Security) Dialer() (*kafka.Dialer, error) {
	t, m, err := s.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: DialTimeout, DualStack: true, TLS: t, SASLMechanism: m}, nil
}

// Transport returns a new transport with s's security for kafka.Client and kafka.Writer. It
// validates s and reads its files first; a problem is a *ConfigError. A transport keeps its
// connections open: its owner calls CloseIdleConnections once done with it.
func (s Security) Transport() (*kafka.Transport, error) {
	t, m, err := s.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: t, SASL: m}, nil
}

// RoundTripper returns the transport of clients that come and go (a few requests, one
// command), and release, which its user calls once done with it. For plaintext it is
// kafka.DefaultTransport, shared by the whole process as a kafka.Client or kafka.Writer
// without a transport shares it (with its cache of the cluster's metadata), and release does
// nothing; otherwise it is a new Transport with s's security, whose idle connections release
// closes. Problems with s are *ConfigErrors, as Transport's.
func (s Security) RoundTripper() (rt kafka.RoundTripper, release func(), err error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	if s.protocol() == Plaintext {
		return kafka.DefaultTransport, func() {}, nil
	}
	t, err := s.Transport()
	if err != nil {
		return nil, nil, err
	}
	return t, t.CloseIdleConnections, nil
}

// String describes s without its password: "SASL_SSL SCRAM-SHA-512 user=projector
// ca=/etc/kafka/ca.crt".
func (s Security) String() string {
	parts := []string{string(s.protocol())}
	if s.Mechanism != "" {
		parts = append(parts, string(s.Mechanism))
	}
	if s.Username != "" {
		parts = append(parts, "user="+s.Username)
	}
	if s.Password != "" {
		parts = append(parts, "password=[redacted]")
	}
	for _, f := range []struct{ name, v string }{{"ca", s.CAFile}, {"cert", s.CertFile}, {"key", s.KeyFile}} {
		if f.v != "" {
			parts = append(parts, f.name+"="+f.v)
		}
	}
	return strings.Join(parts, " ")
}

// GoString is String, so that %#v never prints the password either.
func (s Security) GoString() string { return "kafkasec.Security(" + strconv.Quote(s.String()) + ")" }

// LogValue logs s without its password.
func (s Security) LogValue() slog.Value { return slog.StringValue(s.String()) }

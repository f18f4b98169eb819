package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Fault is why a broker refuses a client: something no retry cures until a setting, a
// certificate or an ACL is changed.
type Fault string

// The faults an *Error names.
const (
	// FaultAuthentication: the broker refused the SASL user name and password.
	FaultAuthentication Fault = "authentication"
	// FaultMechanism: the listener does not enable the SASL mechanism.
	FaultMechanism Fault = "mechanism"
	// FaultSASLNotEnabled: the client authenticates with SASL, the listener has no SASL.
	FaultSASLNotEnabled Fault = "sasl_not_enabled"
	// FaultExpectsSASL: the client does not authenticate, the listener expects SASL.
	FaultExpectsSASL Fault = "expects_sasl"
	// FaultUntrusted: the broker's certificate is not signed by an authority the client
	// trusts (the CA file, or the system's roots).
	FaultUntrusted Fault = "untrusted"
	// FaultHostname: the broker's certificate does not name the host the client dialled.
	FaultHostname Fault = "hostname"
	// FaultExpired: the broker's certificate has expired or is not valid yet.
	FaultExpired Fault = "expired"
	// FaultClientCertificate: the broker refused the client's certificate, or wants one.
	FaultClientCertificate Fault = "client_certificate"
	// FaultHandshake: the TLS handshake failed otherwise (no common version or cipher).
	FaultHandshake Fault = "handshake"
	// FaultNotTLS: the client speaks TLS, the listener does not.
	FaultNotTLS Fault = "not_tls"
	// FaultExpectsTLS: the client does not speak TLS, the listener expects it.
	FaultExpectsTLS Fault = "expects_tls"
	// FaultAuthorization: the broker's ACLs do not let the client's principal do what it
	// asked (Error.Operation on Error.Resource, when known).
	FaultAuthorization Fault = "authorization"
)

// Error is a broker refusing a client for its security settings or its permissions.
type Error struct {
	Fault Fault
	// Broker is the address of the broker that refused, when known.
	Broker string
	// Security is the client's (its password is never printed).
	Security Security
	// Operation and Resource name the ACL that FaultAuthorization lacks, as Kafka names
	// them: "Write" and `topic "annals.user"`; empty when unknown.
	Operation, Resource string
	// Inferred is set when the fault is read from how the broker ended the connection (it
	// closed it without an answer, or after one), rather than from an answer that says so: a
	// broker going down can look the same, so a caller may want to see it twice.
	Inferred bool
	Err      error
}

// Fields of Security, as Describe names them.
const (
	FieldBrokers   = "Brokers"
	FieldProtocol  = "Protocol"
	FieldMechanism = "Mechanism"
	FieldUsername  = "Username"
	FieldPassword  = "Password"
	FieldCAFile    = "CAFile"
	FieldCertFile  = "CertFile"
	FieldKeyFile   = "KeyFile"
)

func (e *Error) Error() string {
	return e.Describe(func(field string) string {
		if field == FieldBrokers {
			return "the brokers"
		}
		return "Security." + field
	})
}

func (e *Error) Unwrap() error { return e.Err }

// Describe is the error's message with the settings at fault named by name, which maps a
// field of Security (FieldProtocol, ...) or FieldBrokers to the name a program gives it (an
// environment variable, say). The message says what was expected, and never quotes the
// password.
func (e *Error) Describe(name func(field string) string) string {
	s := e.Security
	at := ""
	if e.Broker != "" {
		at = " " + e.Broker
	}
	setting := func(field, value string) string {
		if value == "" {
			return name(field) + " (empty)"
		}
		return name(field) + "=" + value
	}
	var msg string
	switch e.Fault {
	case FaultAuthentication:
		msg = fmt.Sprintf("kafka: SASL authentication failed for user %q at broker%s (%s/%s, with %s)",
			s.Username, at, name(FieldUsername), name(FieldPassword), setting(FieldMechanism, string(s.Mechanism)))
	case FaultMechanism:
		msg = fmt.Sprintf("kafka: broker%s does not enable the SASL mechanism %s on this listener (its sasl.enabled.mechanisms)",
			at, setting(FieldMechanism, string(s.Mechanism)))
	case FaultSASLNotEnabled:
		msg = fmt.Sprintf("kafka: the listener of broker%s does not use SASL, but %s expects it (dial the broker's SASL listener in %s, or use PLAINTEXT or SSL)",
			at, setting(FieldProtocol, string(s.protocol())), name(FieldBrokers))
	case FaultExpectsSASL:
		msg = fmt.Sprintf("kafka: broker%s answered, then closed the connection: its listener expects SASL authentication, and %s has none (SASL_PLAINTEXT or SASL_SSL?)",
			at, setting(FieldProtocol, string(s.protocol())))
	case FaultUntrusted:
		if s.CAFile == "" {
			msg = fmt.Sprintf("kafka: the certificate of broker%s is not trusted by the system's roots (%s is empty: name the file of the CA that signs the brokers' certificates)",
				at, name(FieldCAFile))
		} else {
			msg = fmt.Sprintf("kafka: the certificate of broker%s is not trusted by %s (it must hold the CA that signs the brokers' certificates)",
				at, setting(FieldCAFile, s.CAFile))
		}
	case FaultHostname:
		msg = fmt.Sprintf("kafka: the certificate of broker%s does not name the host the client dialled: the host in %s, and the brokers' advertised listeners, must be among its names (verification cannot be turned off)",
			at, name(FieldBrokers))
	case FaultExpired:
		msg = fmt.Sprintf("kafka: the certificate of broker%s has expired or is not valid yet (or this machine's clock is wrong): the brokers in %s must present a valid certificate, which no client setting replaces",
			at, name(FieldBrokers))
	case FaultClientCertificate:
		if s.CertFile == "" {
			msg = fmt.Sprintf("kafka: broker%s wants a client certificate (mutual TLS), and %s and %s are empty", at, name(FieldCertFile), name(FieldKeyFile))
		} else {
			msg = fmt.Sprintf("kafka: broker%s refused the client certificate %s (with %s): the brokers' ssl.truststore must hold the authority that signed it, and it must be valid",
				at, setting(FieldCertFile, s.CertFile), name(FieldKeyFile))
		}
	case FaultHandshake:
		msg = fmt.Sprintf("kafka: the TLS handshake with broker%s failed (%s): no TLS version or cipher suite in common", at, setting(FieldProtocol, string(s.protocol())))
	case FaultNotTLS:
		msg = fmt.Sprintf("kafka: broker%s does not speak TLS on this listener, but %s expects it (PLAINTEXT or SASL_PLAINTEXT?, or the broker's TLS listener in %s)",
			at, setting(FieldProtocol, string(s.protocol())), name(FieldBrokers))
	case FaultExpectsTLS:
		msg = fmt.Sprintf("kafka: broker%s closed the connection without an answer: its listener expects TLS, and %s has none (SSL or SASL_SSL?)",
			at, setting(FieldProtocol, string(s.protocol())))
	case FaultAuthorization:
		what := "what it asked for"
		switch {
		case e.Operation != "" && e.Resource != "":
			what = e.Operation + " on " + e.Resource
		case e.Operation != "":
			what = e.Operation
		}
		broker := "the broker"
		if e.Broker != "" {
			broker = "broker " + e.Broker
		}
		msg = fmt.Sprintf("kafka: not authorized: the ACLs of %s do not grant %s %s (%s): grant it, then start again",
			broker, principal(s, name), what, setting(FieldProtocol, string(s.protocol())))
	default:
		msg = "kafka: refused (" + string(e.Fault) + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// principal is how the broker knows the client, as far as its settings tell.
func principal(s Security, name func(string) string) string {
	switch {
	case s.protocol().SASL():
		return "User:" + s.Username + " (" + name(FieldUsername) + ")"
	case s.protocol().TLS() && s.CertFile != "":
		return "the principal of the client certificate (" + name(FieldCertFile) + ")"
	}
	return "User:ANONYMOUS"
}

// Classify returns err as an *Error when it carries an answer that says the broker refuses
// the client for its security or permissions: a SASL failure (kafka-go's
// SASLAuthenticationFailed, UnsupportedSASLMechanism, IllegalSASLState), a failed
// verification of the broker's certificate (x509's UnknownAuthorityError, HostnameError,
// CertificateInvalidError), a TLS alert from the broker, a reply that is not TLS, or an
// authorization failure. Otherwise it returns err unchanged: an unreachable broker, a
// timeout, a closed connection are no such answer.
func Classify(err error, s Security) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if f, ok := fault(err); ok {
		return &Error{Fault: f, Security: s, Err: err}
	}
	return err
}

// Access is what a client asked the broker to do, for Denied: an ACL operation (Read, Write,
// Describe, Create, DescribeConfigs, ...) on a topic, and the consumer group it asked it for.
type Access struct {
	Operation string
	Topic     string
	Group     string
}

// Denied returns err as an *Error of FaultAuthorization when it carries an authorization
// failure, naming the ACL that is missing: a.Operation on the topic
// (TopicAuthorizationFailed), on the group (GroupAuthorizationFailed), or on the cluster
// (ClusterAuthorizationFailed). Any other error is returned unchanged.
func Denied(err error, a Access, s Security) error {
	code, ok := authorizationCode(err)
	if !ok {
		return err
	}
	var e *Error
	if errors.As(err, &e) && e.Operation != "" {
		return err
	}
	e = &Error{Fault: FaultAuthorization, Security: s, Operation: a.Operation, Err: err}
	switch code {
	case kafka.TopicAuthorizationFailed:
		if a.Topic != "" {
			e.Resource = "topic " + strconv.Quote(a.Topic)
		}
	case kafka.GroupAuthorizationFailed:
		e.Operation = "Read" // what every group request needs
		if a.Group != "" {
			e.Resource = "group " + strconv.Quote(a.Group)
		}
	case kafka.ClusterAuthorizationFailed:
		e.Resource = "the cluster"
	case kafka.TransactionalIDAuthorizationFailed:
		e.Resource = "the transactional id"
	}
	return e
}

// IsAuthorization reports whether err carries an authorization failure (an ACL that does not
// allow the request).
func IsAuthorization(err error) bool {
	_, ok := authorizationCode(err)
	return ok
}

func authorizationCode(err error) (kafka.Error, bool) {
	var code kafka.Error
	found := walk(err, func(e error) bool {
		k, ok := e.(kafka.Error)
		if !ok {
			return false
		}
		switch k {
		case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
			kafka.TransactionalIDAuthorizationFailed, kafka.BrokerAuthorizationFailed, kafka.DelegationTokenAuthorizationFailed:
			code = k
			return true
		}
		return false
	})
	return code, found
}

// fault finds the first definite refusal in err.
func fault(err error) (Fault, bool) {
	var f Fault
	found := walk(err, func(e error) bool {
		switch x := e.(type) {
		case kafka.Error:
			switch x {
			case kafka.SASLAuthenticationFailed:
				f = FaultAuthentication
			case kafka.UnsupportedSASLMechanism:
				f = FaultMechanism
			case kafka.IllegalSASLState:
				f = FaultSASLNotEnabled
			case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
				kafka.TransactionalIDAuthorizationFailed, kafka.BrokerAuthorizationFailed, kafka.DelegationTokenAuthorizationFailed:
				f = FaultAuthorization
			}
		case x509.UnknownAuthorityError, *x509.UnknownAuthorityError:
			f = FaultUntrusted
		case x509.HostnameError, *x509.HostnameError:
			f = FaultHostname
		case x509.CertificateInvalidError:
			f = invalidCertificate(x)
		case *x509.CertificateInvalidError:
			f = invalidCertificate(*x)
		case tls.RecordHeaderError, *tls.RecordHeaderError:
			f = FaultNotTLS
		case *net.OpError:
			if x.Op == "remote error" && x.Err != nil {
				f = alertFault(x.Err.Error())
			}
		}
		return f != ""
	})
	return f, found
}

func invalidCertificate(e x509.CertificateInvalidError) Fault {
	if e.Reason == x509.Expired {
		return FaultExpired
	}
	return FaultUntrusted
}

// alertFault is the fault a TLS alert from the broker stands for ("tls: bad certificate").
func alertFault(alert string) Fault {
	alert = strings.TrimPrefix(alert, "tls: ")
	switch alert {
	case "bad certificate", "unsupported certificate", "certificate revoked", "certificate expired",
		"certificate unknown", "unknown certificate authority", "certificate required", "access denied":
		return FaultClientCertificate
	case "handshake failure", "protocol version not supported", "insufficient security level", "illegal parameter":
		return FaultHandshake
	}
	return ""
}

// walk calls fn with err and every error it wraps, depth first, until fn returns true, and
// reports whether it did. It opens kafka.WriteErrors, which does not unwrap.
func walk(err error, fn func(error) bool) bool {
	if err == nil {
		return false
	}
	if fn(err) {
		return true
	}
	switch x := err.(type) {
	case kafka.WriteErrors:
		for _, e := range x {
			if walk(e, fn) {
				return true
			}
		}
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			if walk(e, fn) {
				return true
			}
		}
	case interface{ Unwrap() error }:
		return walk(x.Unwrap(), fn)
	}
	return false
}

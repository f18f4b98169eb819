// Package kafkasec is the one place where the library's Kafka clients get their connection
// security: TLS (server verification, optionally a client certificate), SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), or both, from one plain description, Security. Its zero
// value is plaintext, as Kafka's PLAINTEXT protocol, so that code and tests that never set it
// work unchanged. Security.Dialer gives the *kafka.Dialer of readers, consumer groups and
// direct connections; Security.Transport the *kafka.Transport of kafka.Client and
// kafka.Writer.
//
// It also tells apart the ways a broker refuses a client for its security, so that a program
// can stop at once with a message that names the setting at fault instead of retrying what no
// retry cures: Probe connects the way the clients do and returns an *Error for a SASL
// authentication failure, an untrusted, expired or misnamed server certificate, a refused
// client certificate, or a client and a listener that do not speak the same protocol;
// Classify finds the definite ones in the errors of any client; Denied turns an authorization
// failure (TopicAuthorizationFailed, GroupAuthorizationFailed, ClusterAuthorizationFailed)
// into an *Error that names the ACL operation and resource missing.
//
// What it must never do:
//
//   - skip the verification of a server's certificate or of its host name: there is no option
//     to, and the host name is the one each connection dials;
//   - print a password: Security's String, GoString and LogValue forms redact it, and no error
//     quotes it;
//   - read any file but the three that Security names, and those only when asked to build a
//     client or to check them;
//   - know how a program names its settings: Error.Describe takes the names from the caller.
package kafkasec

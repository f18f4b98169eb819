// Package kafkawire names the Kafka side of the Annals contract in one place: the topics that
// events and dead letters go to, and the headers of their records. The relay writes them,
// pkg/consume reads and adds to them, and the services and tools find topics by them, so
// that each name is spelled once.
//
// It holds names only: it must never depend on anything but the standard library, so that
// every producer and consumer can import it without cycles, and never change a name that has
// been published, as records already in the topics carry it.
package kafkawire

// Headers of every record the relay publishes. The value is the event's record (Avro single
// object encoding, or JSON as HeaderContentType says); the headers carry the rest of its
// envelope.
const (
	HeaderEventID        = "event-id"
	HeaderEventType      = "event-type"
	HeaderStreamVersion  = "stream-version"
	HeaderGlobalPosition = "global-position"
	HeaderCorrelationID  = "correlation-id"
	HeaderCausationID    = "causation-id"
	HeaderRecordedAt     = "recorded-at"
	HeaderContentType    = "content-type"
	HeaderFingerprint    = "schema-fingerprint"
	// HeaderMetadata carries the event's metadata as a JSON object of strings, when it has
	// any (the Avro record does not hold it).
	HeaderMetadata = "metadata"
	// HeaderSignature proves that the relay published the record: the signature of its key,
	// value and the headers above (pkg/signing says how it is made and checked).
	HeaderSignature = "signature"
)

// Headers the relay adds to a record as it sends it, outside the signature: they say how the
// record travels, not what it is, and a forged one can only mislead a trace or a latency
// histogram.
const (
	// HeaderTraceparent and HeaderTracestate carry the W3C Trace Context of the relay's
	// publish span (www.w3.org/TR/trace-context), when the relay traces: a consumer's
	// handling of the record joins the trace of the command that recorded the event. The
	// event's metadata holds the traceparent of the append itself, under the same names.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	// HeaderPublishedAt is when the relay sent the record (RFC 3339 with nanoseconds, UTC),
	// from which a consumer measures how long the record took to reach it.
	HeaderPublishedAt = "published-at"
)

// Headers a consumer group adds to a record it writes to its dead-letter topic, beside the
// record's own.
const (
	HeaderError             = "error"
	HeaderOriginalTopic     = "original-topic"
	HeaderOriginalPartition = "original-partition"
	HeaderOriginalOffset    = "original-offset"
	HeaderAttempts          = "attempts"
	// HeaderQuarantined marks a record set aside because it is not an event of its stream
	// (the relay did not publish it, or it cannot be decoded and is not known to be the
	// relay's); its value is the reason, signature or undecodable. Such a record blocked
	// nothing and is never to be redriven.
	HeaderQuarantined = "quarantined"
)

// Topic is the topic of an event category: <prefix>.<category>.
func Topic(prefix, category string) string { return prefix + "." + category }

// DeadLetterTopic is the dead-letter topic of a consumer group: <prefix>.dlq.<group>.
func DeadLetterTopic(prefix, group string) string { return prefix + ".dlq." + group }

package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
)

// Verifier checks that a record is one the relay published (signing.Verifier): it returns
// nil, or why not.
type Verifier interface {
	Verify(m kafka.Message) error
}

// DecoderConfig configures NewDecoder. Catalog is required.
type DecoderConfig struct {
	// Catalog holds the consumer's schemas.
	Catalog *schema.Catalog
	// Verifier, when set, checks every record before it is decoded: a record that does not
	// verify is quarantined (QuarantineError). Without one, every record of the topics is
	// taken for the relay's.
	Verifier Verifier
	// AcceptUnsigned lets records without a signature header through unverified, while a
	// deployment turns signing on over topics that still hold unsigned records; a record with
	// a signature must still verify. Such a record is not known to be the relay's, so one
	// that cannot be decoded is quarantined rather than blocking its stream.
	AcceptUnsigned bool
	// Lookup fetches the schema of a fingerprint the catalog lacks, that of a writer deployed
	// before this consumer (schema.TableLookup reads the catalog table). Without one, such a
	// record cannot be decoded.
	Lookup schema.LookupFunc
	// LookupTimeout bounds one lookup (10 s).
	LookupTimeout time.Duration
}

// SchemaDecoder decodes the records the relay publishes with the schemas of cat, trusting
// every record: NewDecoder with the catalog alone.
func SchemaDecoder(cat *schema.Catalog) Decoder {
	return NewDecoder(DecoderConfig{Catalog: cat})
}

// NewDecoder returns the Decoder of the records the relay publishes, in whichever format each
// record's content-type header names, so that a topic whose records changed format while the
// relay's EVENT_SERIALIZATION was switched reads in order: Avro single-object encoding (also
// a record without the header), or JSON, MessagePack or Protocol Buffers, whose schema comes
// from the schema-fingerprint header. A value that does not fit the schema it names is a
// record that cannot be decoded, whatever its format. The value carries the envelope; the event's metadata comes from
// the metadata header, as a JSON object of strings.
//
// A record is the relay's when it verifies; without a Verifier every record counts as the
// relay's. Its errors tell the runtime what to do with the record:
//
//   - a record that does not verify, and a record that cannot be decoded and is not known
//     to be the relay's (accepted unsigned), is a *QuarantineError: set aside, its stream
//     not blocked, since anyone can write such a record under any key;
//   - when the catalog table cannot be read, or a record of the relay's names a schema the
//     table does not hold (with a Lookup), the error is Unavailable: a dependency, not the
//     record, is at fault, and processing pauses and retries. The writer registers its
//     schemas before its relay publishes, so such a schema is on its way (a registration
//     not yet visible) or lost from the table, which starting a writer registers again;
//     pausing cannot skip a genuine event, and with a Verifier no one but the relay can
//     cause the pause;
//   - any other error concerns a record of the relay's: a genuine event that this consumer
//     cannot read (a schema that does not resolve to its own, say), whose stream is held
//     behind it rather than applied over a hole.
func NewDecoder(cfg DecoderConfig) Decoder {
	res := cfg.Catalog.Resolver(cfg.Lookup)
	timeout := cfg.LookupTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return func(m kafka.Message) (events.Envelope, error) {
		trusted := cfg.Verifier == nil
		if cfg.Verifier != nil && !(cfg.AcceptUnsigned && !hasHeader(m, kafkawire.HeaderSignature)) {
			if err := cfg.Verifier.Verify(m); err != nil {
				return events.Envelope{}, &QuarantineError{Reason: QuarantineSignature, Err: fmt.Errorf("signature: %w", err)}
			}
			trusted = true
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		e, err := decode(ctx, res, m)
		switch {
		case err == nil:
			return e, nil
		case errors.Is(err, schema.ErrLookup):
			return events.Envelope{}, Unavailable(err)
		case !trusted:
			return events.Envelope{}, &QuarantineError{Reason: QuarantineUndecodable, Err: err}
		case errors.Is(err, schema.ErrUnknownFingerprint) && cfg.Lookup != nil:
			return events.Envelope{}, Unavailable(fmt.Errorf("%w (the writer registers its schemas before it publishes: waiting for the registration)", err))
		}
		return events.Envelope{}, err
	}
}

func decode(ctx context.Context, res *schema.Resolver, m kafka.Message) (events.Envelope, error) {
	var (
		d   schema.Decoded
		err error
	)
	ct, fp := "", ""
	var md []byte
	for _, h := range m.Headers {
		switch h.Key {
		case kafkawire.HeaderContentType:
			ct = string(h.Value)
		case kafkawire.HeaderFingerprint:
			fp = string(h.Value)
		case kafkawire.HeaderMetadata:
			md = h.Value
		}
	}
	switch ct {
	case schema.ContentTypeAvro, "":
		d, err = res.Decode(ctx, m.Value)
	case schema.ContentTypeJSON, schema.ContentTypeMsgpack, schema.ContentTypeProtobuf:
		f, perr := schema.ParseFingerprint(fp)
		if perr != nil {
			return events.Envelope{}, fmt.Errorf("%s header: %w", kafkawire.HeaderFingerprint, perr)
		}
		switch ct {
		case schema.ContentTypeJSON:
			d, err = res.DecodeJSON(ctx, m.Value, f)
		case schema.ContentTypeMsgpack:
			d, err = res.DecodeMsgpack(ctx, m.Value, f)
		default:
			d, err = res.DecodeProtobuf(ctx, m.Value, f)
		}
	default:
		return events.Envelope{}, fmt.Errorf("%s %q names no format of the relay's: neither Avro nor JSON, MessagePack nor Protocol Buffers", kafkawire.HeaderContentType, ct)
	}
	if err != nil {
		return events.Envelope{}, err
	}
	if d.Envelope.StreamID != string(m.Key) {
		return events.Envelope{}, fmt.Errorf("the record's key %q is not its event's stream %q", m.Key, d.Envelope.StreamID)
	}
	if len(md) > 0 {
		if err := json.Unmarshal(md, &d.Envelope.Metadata); err != nil {
			return events.Envelope{}, fmt.Errorf("%s header: %w", kafkawire.HeaderMetadata, err)
		}
	}
	return d.Envelope, nil
}

func hasHeader(m kafka.Message, name string) bool {
	for _, h := range m.Headers {
		if h.Key == name {
			return true
		}
	}
	return false
}

// Why a record was quarantined: QuarantineError.Reason, and the reason label of
// annals_consumer_quarantined_total.
const (
	QuarantineSignature   = "signature"
	QuarantineUndecodable = "undecodable"
)

// QuarantineError is a Decoder's verdict on a record that is not taken as an event of its
// stream: one the relay did not publish (Reason QuarantineSignature), or one that cannot be
// decoded and is not known to be the relay's (QuarantineUndecodable). The runtime writes it
// to the dead-letter topic with its reason and goes on with its stream, which it does not
// block: a record anyone could have written must never hold a genuine stream.
type QuarantineError struct {
	Reason string
	Err    error
}

func (e *QuarantineError) Error() string { return e.Err.Error() }
func (e *QuarantineError) Unwrap() error { return e.Err }

// IsQuarantined reports whether err is, or wraps, a *QuarantineError.
func IsQuarantined(err error) bool {
	var q *QuarantineError
	return errors.As(err, &q)
}

package consume

import (
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
)

// SchemaDecoder decodes the records the relay publishes: Avro single-object encoding, or JSON
// when the content-type header says so (the schema then comes from the schema-fingerprint
// header). The value carries the envelope; the event's metadata comes from the metadata
// header, as a JSON object of strings.
func SchemaDecoder(cat *schema.Catalog) Decoder {
	return func(m kafka.Message) (events.Envelope, error) {
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
		case schema.ContentTypeJSON:
			f, perr := schema.ParseFingerprint(fp)
			if perr != nil {
				return events.Envelope{}, fmt.Errorf("%s header: %w", kafkawire.HeaderFingerprint, perr)
			}
			d, err = cat.DecodeJSON(m.Value, f)
		case schema.ContentTypeAvro, "":
			d, err = cat.Decode(m.Value)
		default:
			return events.Envelope{}, fmt.Errorf("%s %q is neither Avro nor JSON", kafkawire.HeaderContentType, ct)
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
}

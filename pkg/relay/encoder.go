package relay

import (
	"fmt"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// Payload formats of SchemaEncoder, as EVENT_SERIALIZATION names them.
const (
	FormatAvro     = "avro"
	FormatJSON     = "json"
	FormatMsgpack  = "msgpack"
	FormatProtobuf = "protobuf"
)

// Formats lists the payload formats SchemaEncoder writes.
var Formats = []string{FormatAvro, FormatJSON, FormatMsgpack, FormatProtobuf}

// SchemaEncoder is the Encoder of a domain whose events have contracts in a schema.Catalog:
// each event as the current schema of its type in the Avro single-object encoding, or, with
// Format (or JSON), the same record as JSON, as a MessagePack map or as the version's
// Protocol Buffers message. Every format carries the fingerprint of the version's Avro
// schema, and its content type. An event of a type the catalog lacks, or whose data does not
// fit the schema, is an error of the event itself, and the relay sets its append aside.
type SchemaEncoder struct {
	Catalog *schema.Catalog
	// Format is one of Formats; "" is Avro, or JSON when JSON is set.
	Format string
	// JSON is Format "json", for encoders configured before Format.
	JSON bool
}

// Encode implements Encoder.
func (e SchemaEncoder) Encode(ev events.Envelope) ([]byte, string, uint64, error) {
	format := e.Format
	if format == "" && e.JSON {
		format = FormatJSON
	}
	switch format {
	case FormatJSON:
		v, fp, err := e.Catalog.EncodeJSON(ev)
		return v, schema.ContentTypeJSON, fp, err
	case FormatMsgpack:
		v, fp, err := e.Catalog.EncodeMsgpack(ev)
		return v, schema.ContentTypeMsgpack, fp, err
	case FormatProtobuf:
		v, fp, err := e.Catalog.EncodeProtobuf(ev)
		return v, schema.ContentTypeProtobuf, fp, err
	case FormatAvro, "":
		v, fp, err := e.Catalog.Encode(ev)
		return v, schema.ContentTypeAvro, fp, err
	}
	return nil, "", 0, fmt.Errorf("encode: payload format %q is not one of %v", format, Formats)
}

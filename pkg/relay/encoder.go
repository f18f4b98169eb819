package relay

import (
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// SchemaEncoder is the Encoder of a domain whose events have Avro contracts in a
// schema.Catalog: each event as the current schema of its type in the Avro single-object
// encoding, or, with JSON, the same record as JSON. Both carry the schema's fingerprint. An
// event of a type the catalog lacks, or whose data does not fit the schema, is an error of the
// event itself, and the relay sets its append aside.
type SchemaEncoder struct {
	Catalog *schema.Catalog
	JSON    bool
}

// Encode implements Encoder.
func (e SchemaEncoder) Encode(ev events.Envelope) ([]byte, string, uint64, error) {
	if e.JSON {
		v, fp, err := e.Catalog.EncodeJSON(ev)
		return v, schema.ContentTypeJSON, fp, err
	}
	v, fp, err := e.Catalog.Encode(ev)
	return v, schema.ContentTypeAvro, fp, err
}

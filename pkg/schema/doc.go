// Package schema holds the Avro contracts of the events (embedded .avsc files), their goavro
// codecs, the single-object encoding (C3 01, CRC-64-AVRO fingerprint, binary body) and the
// schema catalog.
//
// It must never decode a payload with a schema other than the one its fingerprint names.
package schema

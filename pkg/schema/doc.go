// Package schema holds the Avro contracts of a domain's events (.avsc files the domain ships
// and hands to Load), their goavro codecs, the single-object encoding (C3 01, CRC-64-AVRO
// fingerprint, binary body) and the schema catalog.
//
// # Contracts
//
// A file <Type>.v<N>.avsc holds version N of the schema of event type Type: a record named Type
// in namespace dev.annals.events, in one of the domain's own or in none, that starts with the
// envelope fields (event_id, stream_id, version, global_position, recorded_at, correlation_id,
// causation_id) and goes on with the event's data fields under their JSON names. A type's
// newest version is its current one, the one Encode writes. A new version may add fields with a
// default and drop fields; it never changes a field's type, and a published file never
// changes. Load checks all of that, and refuses schema constructs the converters do not
// implement: only null, boolean, int, long, string, records, arrays, unions of null with one
// other type, and the logical types uuid (string) and timestamp-micros (long).
//
// # Encodings
//
// Catalog.Encode writes the Avro single-object encoding (ContentTypeAvro): C3 01, the 8-byte
// little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, the Avro
// binary body. The canonical form is written by this package, not taken from goavro, whose
// canonical form keeps a primitive type with a logical type as {"type":"long"} where the
// specification and Apache Avro's Java implementation write "long"; the fingerprints are
// therefore the ones Java's SchemaNormalization.parsingFingerprint64 computes, and a Java
// BinaryMessageDecoder reads the values. goavro encodes and decodes the bodies.
// Catalog.EncodeJSON writes the same record as plain JSON (ContentTypeJSON), with the same
// fingerprint for the headers. Catalog.EncodeMsgpack writes the JSON object's fields, names and
// values as a MessagePack map (ContentTypeMsgpack), and Catalog.EncodeProtobuf the record as the
// Protocol Buffers message of its version (ContentTypeProtobuf); both go out with the
// fingerprint of the version's Avro schema, which names the type and version the value was
// written with. Their decoders check a value against that version by type, as DecodeJSON does:
// a value that does not fit is ErrMalformed.
//
// # Protocol Buffers schemas
//
// Beside each <Type>.v<N>.avsc a domain may ship <Type>.v<N>.proto, the same record as a
// proto3 message named Type in a package named as the record's namespace: a field of the same
// name for each Avro field, string for string, int64 for long (recorded_at in microseconds
// since the Unix epoch), int32 for int, bool for boolean, a message of the record's name for a
// record, repeated for an array, optional for a union with null; no imports, enums, maps or
// oneofs. Load compiles them at run time with protocompile, with no generated code: the .proto
// files are the source of truth as the .avsc files are, so the loader that reads one reads the
// other, and protocompile is a dependency of this package. It checks every file against its
// .avsc and the versions of a type against Protocol Buffers' evolution rules: a field number
// keeps its name, type, cardinality and presence; a field that is gone has its number and name
// reserved; a reserved number or name is never used again. A catalog has a .proto for every
// schema or none (then Protocol Buffers values are ErrNoProtobuf).
//
// Catalog.Decode finds the writer's schema by the fingerprint in the header and reads the body
// with it, then presents the record as the type's current version: fields added since take
// their defaults. The body is checked against the schema before goavro decodes it, so that
// a length or count in a hostile value cannot make goavro allocate more than the value's size.
//
// # Catalog table, and writers deployed first
//
// Catalog.Register records the schemas in annals_schemas (created by the event store's
// migrations in pkg/events/postgres) so that consumers can fetch a writer's schema by
// fingerprint (List, Lookup; the writer serves them at /v1/schemas).
//
// A writer deployed before its consumers writes a version their catalogs lack. A Resolver
// (Catalog.Resolver with TableLookup) fetches that schema from the table by the value's
// fingerprint, checks that the fingerprint is the schema's and that the schema resolves to
// the reader's version of the type under the Avro specification's rules (ErrIncompatible
// otherwise), keeps it, and reads the value as the reader's version. The table holds the
// Parsing Canonical Form, which has no defaults, docs or logical types: none is needed to
// read with a writer's schema, and the envelope's logical types are known. For a rolling
// upgrade to be possible in either order, every version of a type must read every other:
// Catalog.CheckCompatibility checks it (a version that drops a field without a default, say,
// passes Load but not CheckCompatibility).
//
// It must never decode a payload with a schema other than the one its fingerprint names, never
// guess a schema for an unknown fingerprint, and never import services or internal packages.
package schema

package domain

import (
	"embed"
	"io/fs"

	"github.com/annals-dev/annals/pkg/schema"
)

// avro/<Type>.v<N>.avsc is version N of the Avro schema of event type Type, and
// avro/<Type>.v<N>.proto the same record as a Protocol Buffers message (see pkg/schema for the
// rules a new version keeps). A published file never changes.
//
//go:embed avro/*.avsc avro/*.proto
var avroFiles embed.FS

// Schemas is the folder of the domain's schemas (.avsc and .proto), for schema.Load.
func Schemas() fs.FS {
	sub, err := fs.Sub(avroFiles, "avro")
	if err != nil {
		panic("domain: " + err.Error()) // "avro" is a valid path, fixed at build time
	}
	return sub
}

// Catalog returns the schema catalog of the domain's events, loaded on first use and shared by
// the whole process.
var Catalog = schema.Embedded(avroFiles, "avro")

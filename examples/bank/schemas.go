package bank

import (
	"embed"

	"github.com/annals-dev/annals/pkg/schema"
)

// avro/<Type>.v<N>.avsc is version N of the Avro schema of event type Type (pkg/schema gives
// the rules a new version keeps). A published file never changes.
//
//go:embed avro/*.avsc
var avroFiles embed.FS

// Catalog returns the schema catalog of the domain's events, loaded on first use and shared by
// the whole process.
var Catalog = schema.Embedded(avroFiles, "avro")

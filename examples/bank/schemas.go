package bank

import (
	"embed"
	"io/fs"
	"sync"

	"github.com/annals-dev/annals/pkg/schema"
)

// avro/<Type>.v<N>.avsc is version N of the Avro schema of event type Type (pkg/schema gives
// the rules a new version keeps). A published file never changes.
//
//go:embed avro/*.avsc
var avroFiles embed.FS

// Schemas is the folder of the domain's Avro schemas, for schema.Load.
func Schemas() fs.FS {
	sub, err := fs.Sub(avroFiles, "avro")
	if err != nil {
		panic("bank: " + err.Error()) // "avro" is a valid path, fixed at build time
	}
	return sub
}

var catalog = sync.OnceValue(func() *schema.Catalog {
	c, err := schema.Load(Schemas())
	if err != nil {
		// The embedded files are fixed at build time and the package's tests load them.
		panic("bank: the embedded schemas do not load: " + err.Error())
	}
	return c
})

// Catalog returns the schema catalog of the domain's events, loaded on first use and shared by
// the whole process.
func Catalog() *schema.Catalog { return catalog() }

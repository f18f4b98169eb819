package schema_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the examples")

func goldenPath(typ string, version int) string {
	return filepath.Join("testdata", "golden", fmt.Sprintf("%s.v%d.bin", typ, version))
}

// TestGolden decodes values written by earlier builds, one for every version of every schema:
// what is on the topics must stay readable, and the encoding must not drift. go test -update
// rewrites the files; only do that for a new version, never to make a changed encoding pass.
func TestGolden(t *testing.T) {
	c := catalog(t)
	var want []string
	for _, in := range c.Schemas() {
		want = append(want, filepath.Base(goldenPath(in.Type, in.Version)))
	}
	var have []string
	for _, ex := range examples {
		have = append(have, filepath.Base(goldenPath(ex.typ, ex.version)))
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Fatalf("examples cover %v,\n the catalog has %v", have, want)
	}
	if *update {
		for _, ex := range examples {
			value, _, err := c.EncodeVersion(envelope(ex.typ, ex.data), ex.version)
			if err != nil {
				t.Fatalf("%s v%d: %v", ex.typ, ex.version, err)
			}
			if err := os.WriteFile(goldenPath(ex.typ, ex.version), value, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	if !slices.Equal(files, want) {
		t.Errorf("testdata/golden holds %v, want %v", files, want)
	}
	for _, ex := range examples {
		t.Run(fmt.Sprintf("%s.v%d", ex.typ, ex.version), func(t *testing.T) {
			golden, err := os.ReadFile(goldenPath(ex.typ, ex.version))
			if err != nil {
				t.Fatalf("%v (go test -run TestGolden -update writes it)", err)
			}
			d, err := c.Decode(golden)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			e := envelope(ex.typ, ex.data)
			checkDecoded(t, d, e, ex.want)
			if d.WriterVersion != ex.version {
				t.Errorf("writer version = %d, want %d", d.WriterVersion, ex.version)
			}
			if in, _ := c.Schema(d.Fingerprint); in.Type != ex.typ || in.Version != ex.version {
				t.Errorf("fingerprint names %s v%d", in.Type, in.Version)
			}
			value, _, err := c.EncodeVersion(e, ex.version)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(value, golden) {
				t.Errorf("encoding drifted:\n now % x\n was % x", value, golden)
			}
		})
	}
}

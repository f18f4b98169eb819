package config_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/annals-dev/annals/internal/config"
)

// withoutLines returns a copy of f with every line number zeroed.
func withoutLines(f *config.File) *config.File {
	g := &config.File{Name: f.Name}
	for _, s := range f.Sections {
		s.Line = 0
		var entries []config.Entry
		for _, e := range s.Entries {
			e.Line = 0
			entries = append(entries, e)
		}
		s.Entries = entries
		g.Sections = append(g.Sections, s)
	}
	return g
}

func FuzzParse(f *testing.F) {
	f.Add(readShipped(f))
	for _, s := range []string{
		"",
		"[s]\na: b\n",
		"[s]\r\na: \"x\\\"y\\\\z\" # c\r\n",
		"[s]\na: 'x\"y\\'\n",
		"[s]\na: @env(\"A\", \"d\")\nb: @env('B')\nc: @env.secure(\"C\")\n",
		"[s]\na:   spaced value\t# c\n",
		"[s]\na: x#y\n",
		"[s]\na: @env(\"A\",)\n",
		"[s]\na: \"unterminated\n",
		"[ s ]\n[t]\nk: v:w\n",
		"\xef\xbb\xbf[s]\na: \xef\xbb\xbfb\n",
		"a: 1\n[s]\n[s]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := config.Parse("fuzz.tsk", src)
		if err != nil {
			return
		}
		out := file.Format()
		again, err := config.Parse("fuzz.tsk", out)
		if err != nil {
			t.Fatalf("Format output does not parse: %v\ninput:\n%q\nformatted:\n%q", err, src, out)
		}
		if got, want := withoutLines(again), withoutLines(file); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the file\ninput: %q\nformatted: %q\ngot  %+v\nwant %+v", src, out, got, want)
		}
		if got, want := again.Format(), out; !bytes.Equal(got, want) {
			t.Fatalf("Format is not stable:\ngot  %q\nwant %q", got, want)
		}
	})
}

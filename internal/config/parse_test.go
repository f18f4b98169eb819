package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/config"
)

const shippedPath = "../../config/event_sourcing.tsk"

func readShipped(t testing.TB) []byte {
	t.Helper()
	src, err := os.ReadFile(shippedPath)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func parseShipped(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Parse(shippedPath, readShipped(t))
	if err != nil {
		t.Fatalf("Parse(shipped file): %v", err)
	}
	return f
}

func findEntry(f *config.File, section, key string) (config.Entry, bool) {
	for _, s := range f.Sections {
		if s.Name != section {
			continue
		}
		for _, e := range s.Entries {
			if e.Key == key {
				return e, true
			}
		}
	}
	return config.Entry{}, false
}

// TestShippedFileHasGuideKeys checks every key of the guide's two
// configuration blocks, with the guide's environment variable.
func TestShippedFileHasGuideKeys(t *testing.T) {
	f := parseShipped(t)
	tests := []struct {
		section, key, env string
		secure            bool
	}{
		{"event_sourcing", "enabled", "EVENT_SOURCING_ENABLED", false},
		{"event_sourcing", "event_store_type", "EVENT_STORE_TYPE", false},
		{"event_sourcing", "snapshot_frequency", "SNAPSHOT_FREQUENCY", false},
		{"event_sourcing", "event_serialization", "EVENT_SERIALIZATION", false},
		{"event_store", "host", "EVENT_STORE_HOST", false},
		{"event_store", "port", "EVENT_STORE_PORT", false},
		{"event_store", "database", "EVENT_STORE_DATABASE", false},
		{"event_store", "username", "EVENT_STORE_USERNAME", false},
		{"event_store", "password", "EVENT_STORE_PASSWORD", true},
		{"event_store", "connection_pool", "EVENT_STORE_CONNECTION_POOL", false},
		{"projections", "enabled", "PROJECTIONS_ENABLED", false},
		{"projections", "real_time", "REAL_TIME_PROJECTIONS", false},
		{"projections", "batch_size", "PROJECTION_BATCH_SIZE", false},
		{"projections", "parallel_processing", "PARALLEL_PROJECTIONS", false},
		{"projections", "retry_attempts", "PROJECTION_RETRY_ATTEMPTS", false},
		{"aggregates", "snapshot_enabled", "AGGREGATE_SNAPSHOTS_ENABLED", false},
		{"aggregates", "snapshot_retention", "SNAPSHOT_RETENTION_PERIOD", false},
		{"aggregates", "optimistic_concurrency", "OPTIMISTIC_CONCURRENCY", false},
		{"aggregates", "max_events_per_aggregate", "MAX_EVENTS_PER_AGGREGATE", false},
		{"aggregates", "max_event_bytes", "MAX_EVENT_BYTES", false},
		{"handlers", "enabled", "EVENT_HANDLERS_ENABLED", false},
		{"handlers", "async_processing", "ASYNC_EVENT_PROCESSING", false},
		{"handlers", "error_handling", "EVENT_HANDLER_ERROR_HANDLING", false},
		{"handlers", "retry_failed_events", "RETRY_FAILED_EVENTS", false},
		{"monitoring", "metrics_enabled", "EVENT_SOURCING_METRICS_ENABLED", false},
		{"monitoring", "event_tracking", "EVENT_TRACKING_ENABLED", false},
		{"monitoring", "performance_monitoring", "EVENT_PERFORMANCE_MONITORING", false},
	}
	for _, tt := range tests {
		e, ok := findEntry(f, tt.section, tt.key)
		if !ok {
			t.Errorf("[%s] %s missing from the shipped file", tt.section, tt.key)
			continue
		}
		if e.Env == nil {
			t.Errorf("[%s] %s: got literal %q, want an @env reference", tt.section, tt.key, e.Literal)
			continue
		}
		if got, want := e.Env.Name, tt.env; got != want {
			t.Errorf("[%s] %s: env got %q, want %q", tt.section, tt.key, got, want)
		}
		if got, want := e.Env.Secure, tt.secure; got != want {
			t.Errorf("[%s] %s: secure got %v, want %v", tt.section, tt.key, got, want)
		}
		if got, want := e.Env.HasDefault, !tt.secure; got != want {
			t.Errorf("[%s] %s: has default got %v, want %v", tt.section, tt.key, got, want)
		}
	}
}

// TestShippedFileMatchesSchema checks that the shipped file lists every
// schema key, in schema order, as @env of the schema's variable with the
// schema's default.
func TestShippedFileMatchesSchema(t *testing.T) {
	f := parseShipped(t)
	var got []string
	for _, s := range f.Sections {
		for _, e := range s.Entries {
			got = append(got, s.Name+"."+e.Key)
		}
	}
	var want []string
	for _, k := range config.Keys() {
		want = append(want, k.Path())
		e, ok := findEntry(f, k.Section, k.Name)
		if !ok || e.Env == nil {
			continue
		}
		if e.Env.Name != k.Env {
			t.Errorf("%s: env got %q, want %q", k.Path(), e.Env.Name, k.Env)
		}
		if k.Secure {
			if !e.Env.Secure {
				t.Errorf("%s: got @env, want @env.secure", k.Path())
			}
			continue
		}
		if e.Env.Default != k.Default {
			t.Errorf("%s: default got %q, want %q", k.Path(), e.Env.Default, k.Default)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys in shipped file:\ngot  %v\nwant %v", got, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []config.Section
	}{
		{
			name: "empty",
			src:  "",
			want: nil,
		},
		{
			name: "comments and blanks only",
			src:  "# a comment\n\n   # indented\n\t\n",
			want: nil,
		},
		{
			name: "literals",
			src: `[s]
bare: hello world   # trailing comment
num: 42
dq: "say \"hi\" \\ # not a comment"
sq: 'it"s'
sq2: 'a "b" \n c'
empty: ""
colon: a:b:c
at: x@y
`,
			want: []config.Section{{Name: "s", Line: 1, Entries: []config.Entry{
				{Key: "bare", Literal: "hello world", Line: 2},
				{Key: "num", Literal: "42", Line: 3},
				{Key: "dq", Literal: `say "hi" \ # not a comment`, Line: 4},
				{Key: "sq", Literal: `it"s`, Line: 5},
				{Key: "sq2", Literal: `a "b" \n c`, Line: 6},
				{Key: "empty", Literal: "", Line: 7},
				{Key: "colon", Literal: "a:b:c", Line: 8},
				{Key: "at", Literal: "x@y", Line: 9},
			}}},
		},
		{
			name: "env references",
			src: `[s]
a: @env("A", "x")
b: @env( 'B' )   # comment
c: @env.secure("C")
d:@env("D","")
`,
			want: []config.Section{{Name: "s", Line: 1, Entries: []config.Entry{
				{Key: "a", Env: &config.EnvRef{Name: "A", Default: "x", HasDefault: true}, Line: 2},
				{Key: "b", Env: &config.EnvRef{Name: "B"}, Line: 3},
				{Key: "c", Env: &config.EnvRef{Name: "C", Secure: true}, Line: 4},
				{Key: "d", Env: &config.EnvRef{Name: "D", HasDefault: true}, Line: 5},
			}}},
		},
		{
			name: "CRLF, BOM, tabs and empty sections",
			src:  "\xef\xbb\xbf[a]\r\n[ b ]  # c\r\n\tk :\tv\r\n",
			want: []config.Section{
				{Name: "a", Line: 1},
				{Name: "b", Line: 2, Entries: []config.Entry{{Key: "k", Literal: "v", Line: 3}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse("x.tsk", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := f.Sections, tt.want; !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // one line of the error each
	}{
		{"key outside section", "# x\n\nport: 1\n", []string{`f.tsk:3: key "port" outside any [section]`}},
		{"duplicate key", "[s]\na: 1\na: 2\n", []string{`f.tsk:3: duplicate key "a" in [s] (first at line 2)`}},
		{"duplicate section", "[s]\n[t]\n[s]\n", []string{`f.tsk:3: duplicate section [s] (first at line 1)`}},
		{"unterminated double", "[s]\na: \"abc\n", []string{`f.tsk:2: unterminated string (missing closing ")`}},
		{"unterminated single", "[s]\na: 'abc\n", []string{`f.tsk:2: unterminated string (missing closing ')`}},
		{"unterminated escape", "[s]\na: \"abc\\", []string{`f.tsk:2: unterminated string (missing closing ")`}},
		{"bad escape", "[s]\na: \"a\\nb\"\n", []string{`f.tsk:2: invalid escape "\n" in string (only \" and \\ are allowed)`}},
		{"unknown function", "[s]\na: @foo(\"X\")\n", []string{`f.tsk:2: unknown function @foo (known: @env, @env.secure)`}},
		{"unknown env method", "[s]\na: @env.plain(\"X\")\n", []string{`f.tsk:2: unknown function @env.plain (known: @env, @env.secure)`}},
		{"bare at", "[s]\na: @\n", []string{`f.tsk:2: expected a function name after "@"`}},
		{"env without parens", "[s]\na: @env\n", []string{`f.tsk:2: malformed @env call: expected "(" after @env`}},
		{"env no args", "[s]\na: @env()\n", []string{`f.tsk:2: malformed @env call: missing variable name`}},
		{"env unquoted", "[s]\na: @env(X)\n", []string{`f.tsk:2: malformed @env call: arguments must be quoted strings`}},
		{"env unclosed", "[s]\na: @env(\"X\"\n", []string{`f.tsk:2: malformed @env call: missing ")"`}},
		{"env three args", "[s]\na: @env(\"X\", \"1\", \"2\")\n", []string{`f.tsk:2: malformed @env call: it takes a variable name and an optional default, got 3 arguments`}},
		{"env bad name", "[s]\na: @env(\"1X\")\n", []string{`f.tsk:2: malformed @env call: invalid variable name "1X"`}},
		{"env missing comma", "[s]\na: @env(\"X\" \"1\")\n", []string{`f.tsk:2: malformed @env call: expected "," or ")" after an argument`}},
		{"env trailing comma", "[s]\na: @env(\"X\",)\n", []string{`f.tsk:2: malformed @env call: arguments must be quoted strings`}},
		{"secure with default", "[s]\na: @env.secure(\"X\", \"pw\")\n", []string{`f.tsk:2: malformed @env.secure call: it takes exactly one argument`}},
		{"text after string", "[s]\na: \"x\" y\n", []string{`f.tsk:2: unexpected text "y" after value`}},
		{"text after call", "[s]\na: @env(\"X\") y\n", []string{`f.tsk:2: unexpected text "y" after value`}},
		{"no value", "[s]\na:   # nothing\n", []string{`f.tsk:2: key "a" has no value`}},
		{"no colon", "[s]\njust words\n", []string{`f.tsk:2: expected "key: value" or "[section]", found "just words"`}},
		{"colon in comment", "[s]\nword # a: b\n", []string{`f.tsk:2: expected "key: value" or "[section]"`}},
		{"bad key", "[s]\nmy key: 1\n", []string{`f.tsk:2: invalid key name "my key"`}},
		{"empty key", "[s]\n: 1\n", []string{`f.tsk:2: invalid key name ""`}},
		{"unterminated header", "[s\n", []string{`f.tsk:1: unterminated section header "[s" (missing "]")`}},
		{"bad section name", "[a b]\n", []string{`f.tsk:1: invalid section name "a b"`}},
		{"text after header", "[s] x\n", []string{`f.tsk:1: unexpected text "x" after section header [s]`}},
		{"control character", "[s]\na: x\x00y\n", []string{`f.tsk:2: control character U+0000 is not allowed`}},
		{"lone CR", "[s]\na: x\ry\n", []string{`f.tsk:2: control character U+000D is not allowed`}},
		{"invalid UTF-8", "[s]\na: \xff\n", []string{`f.tsk:2: invalid UTF-8`}},
		{
			name: "every error reported, none cascading from a bad header",
			src:  "[s]\na: \"x\nb: @nope\n[bad name]\nc: 1\n[t]\nd: 1\nd: 2\n",
			want: []string{
				`f.tsk:2: unterminated string`,
				`f.tsk:3: unknown function @nope`,
				`f.tsk:4: invalid section name "bad name"`,
				`f.tsk:8: duplicate key "d" in [t] (first at line 7)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse("f.tsk", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse: got %+v, want an error", f)
			}
			lines := strings.Split(err.Error(), "\n")
			if got, want := len(lines), len(tt.want); got != want {
				t.Fatalf("got %d errors, want %d:\n%v", got, want, err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("error %d:\ngot  %s\nwant %s...", i, lines[i], want)
				}
			}
		})
	}
}

func TestParseTooManyErrors(t *testing.T) {
	src := strings.Repeat("oops\n", 100)
	_, err := config.Parse("f.tsk", []byte(src))
	if err == nil {
		t.Fatal("got nil error")
	}
	lines := strings.Split(err.Error(), "\n")
	if got, want := len(lines), 21; got != want {
		t.Errorf("got %d lines, want %d", got, want)
	}
	if got, want := lines[len(lines)-1], "f.tsk: too many errors"; got != want {
		t.Errorf("last line: got %q, want %q", got, want)
	}
}

func TestFormat(t *testing.T) {
	src := `# comment
[a]
x: hello   # c
y: " padded "
z: 'say "hi" \ # not a comment'
w: '@literal'
e: ""
[b]
p: @env.secure("P")
q: @env('Q', 'd"q')
r: @env("R")
`
	want := `[a]
x: hello
y: " padded "
z: "say \"hi\" \\ # not a comment"
w: "@literal"
e: ""

[b]
p: @env.secure("P")
q: @env("Q", "d\"q")
r: @env("R")
`
	f, err := config.Parse("f.tsk", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Format()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

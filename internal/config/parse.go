package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// File is a parsed .tsk document: its sections and keys in file order.
type File struct {
	Name     string // the name given to Parse, used in error messages
	Sections []Section
}

// Section is one [name] block of a File.
type Section struct {
	Name    string
	Line    int
	Entries []Entry
}

// Entry is one "key: value" line. Exactly one of Literal and Env is
// meaningful: Env is nil for a literal value.
type Entry struct {
	Key     string
	Literal string
	Env     *EnvRef
	Line    int
}

// EnvRef is an @env("NAME", "default"), @env("NAME") or
// @env.secure("NAME") value.
type EnvRef struct {
	Name       string
	Default    string
	HasDefault bool
	Secure     bool
}

// SyntaxError is a .tsk syntax error at a line of a file.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// maxSyntaxErrors bounds how many syntax errors Parse reports.
const maxSyntaxErrors = 20

var utf8BOM = []byte("\xef\xbb\xbf")

// Parse parses .tsk source. name is used in error messages only. On error
// it returns every syntax error found (up to a bound), joined.
func Parse(name string, src []byte) (*File, error) {
	p := &parser{file: &File{Name: name}, cur: -1, sectionLine: map[string]int{}}
	src = bytes.TrimPrefix(src, utf8BOM)
	for i, line := range strings.Split(string(src), "\n") {
		p.line = i + 1
		p.parseLine(strings.TrimSuffix(line, "\r"))
		if len(p.errs) > maxSyntaxErrors {
			p.errs = append(p.errs[:maxSyntaxErrors], fmt.Errorf("%s: too many errors", name))
			break
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.file, nil
}

type parser struct {
	file        *File
	line        int
	cur         int  // index of the current section, -1 before the first
	skipping    bool // the current section header was invalid
	sectionLine map[string]int
	keyLine     []map[string]int // per section: key -> line
	errs        []error
}

func (p *parser) errorf(format string, args ...any) {
	p.errs = append(p.errs, &SyntaxError{File: p.file.Name, Line: p.line, Msg: fmt.Sprintf(format, args...)})
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimLeft(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

func trimRight(s string) string {
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// validName reports whether s is a valid section or key name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validEnvName reports whether s is a valid environment variable name.
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// excerpt shortens s for an error message.
func excerpt(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func (p *parser) parseLine(line string) {
	if !utf8.ValidString(line) {
		p.errorf("invalid UTF-8")
		return
	}
	for _, r := range line {
		if r < 0x20 && r != '\t' || r == 0x7f {
			p.errorf("control character %U is not allowed", r)
			return
		}
	}
	s := trimLeft(line)
	switch {
	case s == "" || s[0] == '#':
		return
	case s[0] == '[':
		p.parseHeader(s)
	default:
		p.parseEntry(s)
	}
}

func (p *parser) parseHeader(s string) {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		p.errorf(`unterminated section header %q (missing "]")`, excerpt(trimRight(s)))
		p.cur, p.skipping = -1, true
		return
	}
	name := trimRight(trimLeft(s[1:end]))
	if rest := trimLeft(s[end+1:]); rest != "" && rest[0] != '#' {
		p.errorf("unexpected text %q after section header [%s]", excerpt(rest), name)
		p.cur, p.skipping = -1, true
		return
	}
	if !validName(name) {
		p.errorf("invalid section name %q (use letters, digits, '_', '-' and '.')", excerpt(name))
		p.cur, p.skipping = -1, true
		return
	}
	if first, ok := p.sectionLine[name]; ok {
		p.errorf("duplicate section [%s] (first at line %d)", name, first)
		p.cur, p.skipping = -1, true
		return
	}
	p.sectionLine[name] = p.line
	p.file.Sections = append(p.file.Sections, Section{Name: name, Line: p.line})
	p.keyLine = append(p.keyLine, map[string]int{})
	p.cur, p.skipping = len(p.file.Sections)-1, false
}

func (p *parser) parseEntry(s string) {
	colon := strings.IndexByte(s, ':')
	if hash := strings.IndexByte(s, '#'); colon < 0 || hash >= 0 && hash < colon {
		p.errorf(`expected "key: value" or "[section]", found %q`, excerpt(trimRight(s)))
		return
	}
	key := trimRight(s[:colon])
	if !validName(key) {
		p.errorf("invalid key name %q (use letters, digits, '_', '-' and '.')", excerpt(key))
		return
	}
	if p.cur < 0 {
		if !p.skipping {
			p.errorf("key %q outside any [section]", key)
		}
		return
	}
	e, msg := parseValue(s[colon+1:], key)
	if msg != "" {
		p.errorf("%s", msg)
		return
	}
	sec := &p.file.Sections[p.cur]
	if first, ok := p.keyLine[p.cur][key]; ok {
		p.errorf("duplicate key %q in [%s] (first at line %d)", key, sec.Name, first)
		return
	}
	p.keyLine[p.cur][key] = p.line
	e.Key, e.Line = key, p.line
	sec.Entries = append(sec.Entries, e)
}

// parseValue parses the text after "key:". It returns a message on error.
func parseValue(s, key string) (Entry, string) {
	s = trimLeft(s)
	if s == "" || s[0] == '#' {
		return Entry{}, fmt.Sprintf(`key %q has no value (write "" for an empty string)`, key)
	}
	switch s[0] {
	case '"', '\'':
		v, rest, msg := parseQuoted(s)
		if msg != "" {
			return Entry{}, msg
		}
		if msg := checkTrailing(rest); msg != "" {
			return Entry{}, msg
		}
		return Entry{Literal: v}, ""
	case '@':
		ref, msg := parseCall(s)
		if msg != "" {
			return Entry{}, msg
		}
		return Entry{Env: ref}, ""
	default:
		if end := strings.IndexByte(s, '#'); end >= 0 {
			s = s[:end]
		}
		return Entry{Literal: trimRight(s)}, ""
	}
}

// checkTrailing accepts only blanks and a comment after a value.
func checkTrailing(rest string) string {
	rest = trimLeft(rest)
	if rest != "" && rest[0] != '#' {
		return fmt.Sprintf("unexpected text %q after value", excerpt(rest))
	}
	return ""
}

// parseQuoted parses a string starting with its opening quote and returns
// its value and the text after the closing quote. Double-quoted strings
// know two escapes, \" and \\; single-quoted strings have none.
func parseQuoted(s string) (val, rest, msg string) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), s[i+1:], ""
		case c == '\\' && q == '"':
			if i+1 >= len(s) {
				return "", "", `unterminated string (missing closing ")`
			}
			if n := s[i+1]; n == '"' || n == '\\' {
				b.WriteByte(n)
				i++
				continue
			}
			r, _ := utf8.DecodeRuneInString(s[i+1:])
			return "", "", fmt.Sprintf(`invalid escape "\%c" in string (only \" and \\ are allowed)`, r)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Sprintf("unterminated string (missing closing %c)", q)
}

// parseCall parses @env("NAME"), @env("NAME", "default") and
// @env.secure("NAME").
func parseCall(s string) (*EnvRef, string) {
	i := 1
	for i < len(s) && (isAlnum(s[i]) || s[i] == '_' || s[i] == '.') {
		i++
	}
	fn := s[:i]
	var secure bool
	switch fn {
	case "@env":
	case "@env.secure":
		secure = true
	case "@":
		return nil, `expected a function name after "@" (known: @env, @env.secure)`
	default:
		return nil, fmt.Sprintf("unknown function %s (known: @env, @env.secure)", fn)
	}
	rest := trimLeft(s[i:])
	if rest == "" || rest[0] != '(' {
		return nil, fmt.Sprintf(`malformed %s call: expected "(" after %s`, fn, fn)
	}
	rest = rest[1:]
	var args []string
	for {
		rest = trimLeft(rest)
		if rest == "" {
			return nil, fmt.Sprintf(`malformed %s call: missing ")"`, fn)
		}
		if rest[0] == ')' && len(args) == 0 {
			rest = rest[1:]
			break
		}
		if rest[0] != '"' && rest[0] != '\'' {
			return nil, fmt.Sprintf("malformed %s call: arguments must be quoted strings", fn)
		}
		a, r, msg := parseQuoted(rest)
		if msg != "" {
			return nil, fmt.Sprintf("malformed %s call: %s", fn, msg)
		}
		args = append(args, a)
		rest = trimLeft(r)
		if rest == "" {
			return nil, fmt.Sprintf(`malformed %s call: missing ")"`, fn)
		}
		if rest[0] == ',' {
			rest = rest[1:]
			continue
		}
		if rest[0] == ')' {
			rest = rest[1:]
			break
		}
		return nil, fmt.Sprintf(`malformed %s call: expected "," or ")" after an argument`, fn)
	}
	switch {
	case secure && len(args) != 1:
		return nil, "malformed @env.secure call: it takes exactly one argument, the variable name (a secret has no default in the file)"
	case len(args) == 0:
		return nil, "malformed @env call: missing variable name"
	case len(args) > 2:
		return nil, fmt.Sprintf("malformed @env call: it takes a variable name and an optional default, got %d arguments", len(args))
	case !validEnvName(args[0]):
		return nil, fmt.Sprintf("malformed %s call: invalid variable name %q (use letters, digits and '_', not starting with a digit)", fn, excerpt(args[0]))
	}
	if msg := checkTrailing(rest); msg != "" {
		return nil, msg
	}
	ref := &EnvRef{Name: args[0], Secure: secure}
	if len(args) == 2 {
		ref.Default, ref.HasDefault = args[1], true
	}
	return ref, ""
}

// Format writes f as canonical .tsk text: one "[section]" line per
// section, sections separated by a blank line, "key: value" lines, no
// comments. Literals are written bare when that reads back identically and
// double-quoted otherwise. Parse(f.Name, f.Format()) gives f back, apart
// from line numbers, for every File that Parse returned.
func (f *File) Format() []byte {
	var b bytes.Buffer
	for i, s := range f.Sections {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries {
			b.WriteString(e.Key + ": " + formatValue(e) + "\n")
		}
	}
	return b.Bytes()
}

func formatValue(e Entry) string {
	switch {
	case e.Env == nil:
		if bareOK(e.Literal) {
			return e.Literal
		}
		return quote(e.Literal)
	case e.Env.Secure:
		return "@env.secure(" + quote(e.Env.Name) + ")"
	case e.Env.HasDefault:
		return "@env(" + quote(e.Env.Name) + ", " + quote(e.Env.Default) + ")"
	default:
		return "@env(" + quote(e.Env.Name) + ")"
	}
}

// bareOK reports whether a literal reads back unchanged when written
// without quotes.
func bareOK(s string) bool {
	return s != "" && !isSpace(s[0]) && !isSpace(s[len(s)-1]) &&
		s[0] != '"' && s[0] != '\'' && s[0] != '@' && !strings.Contains(s, "#")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
)

//go:embed defaults/*.tmpl
var defaults embed.FS

// Kind is a kind of email.
type Kind string

// The kinds of email, after the guide's EmailNotificationHandler.
const (
	Welcome        Kind = "welcome"         // on UserCreated
	OrderConfirmed Kind = "order_confirmed" // on OrderConfirmed
	OrderCancelled Kind = "order_cancelled" // on OrderCancelled
)

// Kinds lists every kind of email.
func Kinds() []Kind { return []Kind{Welcome, OrderConfirmed, OrderCancelled} }

// The parts of an email, each one template file: <kind>.<part>.tmpl.
const (
	partSubject = "subject"
	partText    = "text"
	partHTML    = "html"
)

var parts = []string{partSubject, partText, partHTML}

// FileName is the name of the template file of a kind's part ("subject", "text" or "html").
func FileName(k Kind, part string) string { return string(k) + "." + part + ".tmpl" }

// Data is what the templates see.
type Data struct {
	Name  string // the recipient's name
	Email string // the recipient's address
	// UserID is the user's id; OrderID the order's (empty in a welcome email).
	UserID  string
	OrderID string
	// Items are the order's lines and TotalCents its total in cents (templates format it
	// with money: {{money .TotalCents}}).
	Items      []Item
	TotalCents int64
	// Reason is why the order was cancelled.
	Reason string
	// EventID is the id of the event the email is about, and RecordedAt when it was recorded.
	EventID    string
	RecordedAt time.Time
}

// Item is one line of an order.
type Item struct {
	ID         string
	Name       string
	PriceCents int64
	Quantity   int64
	LineCents  int64 // PriceCents × Quantity
}

// Rendered is an email's subject and bodies.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Set is the parsed templates of every kind.
type Set struct {
	subject map[Kind]*texttemplate.Template
	text    map[Kind]*texttemplate.Template
	html    map[Kind]*htmltemplate.Template
	sources map[string]string // file name -> where it came from, for error messages
}

// Funcs are the functions the templates may call besides the standard ones: money formats
// cents as units with two decimals (1999 -> "19.99").
var Funcs = map[string]any{"money": Money}

// Money formats an amount in cents as units with two decimals: 1999 -> "19.99", -5 -> "-0.05".
func Money(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-(cents+1))+1 // no overflow at math.MinInt64
	}
	return sign + strconv.FormatUint(u/100, 10) + "." + fmt.Sprintf("%02d", u%100)
}

// Load parses the built-in templates, each replaced by the file of the same name in dir when
// dir is not empty, and checks that every template executes on sample data.
func Load(dir string) (*Set, error) {
	known := map[string]bool{}
	for _, k := range Kinds() {
		for _, p := range parts {
			known[FileName(k, p)] = true
		}
	}
	files := map[string][]byte{}
	sources := map[string]string{}
	for name := range known {
		b, err := defaults.ReadFile("defaults/" + name)
		if err != nil {
			return nil, fmt.Errorf("templates: built-in %s: %w", name, err)
		}
		files[name], sources[name] = b, "built-in "+name
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("templates: folder %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if !known[e.Name()] {
				names := make([]string, 0, len(known))
				for n := range known {
					names = append(names, n)
				}
				slices.Sort(names)
				return nil, fmt.Errorf("templates: %s is not a template the notifier knows; known: %s",
					filepath.Join(dir, e.Name()), strings.Join(names, ", "))
			}
			path := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			files[e.Name()], sources[e.Name()] = b, path
		}
	}
	s := &Set{
		subject: map[Kind]*texttemplate.Template{},
		text:    map[Kind]*texttemplate.Template{},
		html:    map[Kind]*htmltemplate.Template{},
		sources: sources,
	}
	for _, k := range Kinds() {
		var err error
		name := FileName(k, partSubject)
		if s.subject[k], err = texttemplate.New(name).Option("missingkey=error").Funcs(Funcs).Parse(string(files[name])); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", sources[name], err)
		}
		name = FileName(k, partText)
		if s.text[k], err = texttemplate.New(name).Option("missingkey=error").Funcs(Funcs).Parse(string(files[name])); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", sources[name], err)
		}
		name = FileName(k, partHTML)
		if s.html[k], err = htmltemplate.New(name).Option("missingkey=error").Funcs(Funcs).Parse(string(files[name])); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", sources[name], err)
		}
		if _, err := s.Render(k, Sample()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Sample is the data Load checks the templates with.
func Sample() Data {
	return Data{
		Name: "Ada Lovelace", Email: "ada@example.com",
		UserID: "0190a4b2-7f3c-7a00-8000-000000000001", OrderID: "0190a4b2-7f3c-7a00-8000-000000000002",
		Items:      []Item{{ID: "book", Name: "A book", PriceCents: 1999, Quantity: 2, LineCents: 3998}},
		TotalCents: 3998, Reason: "changed my mind",
		EventID: "0190a4b2-7f3c-7a00-8000-000000000003", RecordedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// Render renders the email of kind k for d.
func (s *Set) Render(k Kind, d Data) (Rendered, error) {
	subject, ok := s.subject[k]
	if !ok {
		return Rendered{}, fmt.Errorf("templates: no email of kind %q", k)
	}
	var r Rendered
	var b bytes.Buffer
	if err := subject.Execute(&b, d); err != nil {
		return Rendered{}, s.execError(k, partSubject, err)
	}
	r.Subject = OneLine(b.String())
	if r.Subject == "" {
		return Rendered{}, s.execError(k, partSubject, errors.New("the subject is empty"))
	}
	b.Reset()
	if err := s.text[k].Execute(&b, d); err != nil {
		return Rendered{}, s.execError(k, partText, err)
	}
	r.Text = b.String()
	b.Reset()
	if err := s.html[k].Execute(&b, d); err != nil {
		return Rendered{}, s.execError(k, partHTML, err)
	}
	r.HTML = b.String()
	return r, nil
}

func (s *Set) execError(k Kind, part string, err error) error {
	name := FileName(k, part)
	return fmt.Errorf("templates: %s: %w", s.sources[name], err)
}

// OneLine trims s and replaces each run of white space and other control characters (line
// breaks, tabs) with one space.
func OneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }), " ")
}

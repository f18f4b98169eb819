package templates_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/annals-dev/annals/services/notifier/templates"
)

func TestLoad_BuiltIn(t *testing.T) {
	s, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	d := templates.Sample()
	for _, tc := range []struct {
		kind    templates.Kind
		subject string
		text    []string
	}{
		{templates.Welcome, "Welcome to Annals, Ada Lovelace", []string{"Hello Ada Lovelace,", "sign in as ada@example.com"}},
		{templates.OrderConfirmed, "Your order " + d.OrderID + " is confirmed", []string{"2 x A book (book) at 19.99 = 39.98", "Total: 39.98"}},
		{templates.OrderCancelled, "Your order " + d.OrderID + " is cancelled", []string{"Reason: changed my mind"}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			r, err := s.Render(tc.kind, d)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject != tc.subject {
				t.Errorf("subject %q, want %q", r.Subject, tc.subject)
			}
			for _, want := range tc.text {
				if !strings.Contains(r.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, r.Text)
				}
			}
			if !strings.Contains(r.HTML, "<html>") || !strings.Contains(r.HTML, "Ada Lovelace") {
				t.Errorf("html:\n%s", r.HTML)
			}
		})
	}
	if _, err := s.Render("birthday", d); err == nil {
		t.Error("Render of an unknown kind succeeded")
	}
}

func TestRender_Escapes(t *testing.T) {
	s, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	d := templates.Sample()
	d.Name = "Eve <script>alert(1)</script>\r\nBcc: x@evil.example"
	r, err := s.Render(templates.Welcome, d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Errorf("HTML does not escape the name:\n%s", r.HTML)
	}
	if want := "Welcome to Annals, Eve <script>alert(1)</script> Bcc: x@evil.example"; r.Subject != want {
		t.Errorf("subject %q, want %q (one line)", r.Subject, want)
	}
}

func TestLoad_Folder(t *testing.T) {
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("Replaces", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "welcome.subject.tmpl", "Hi {{.Name}}!\n")
		write(t, dir, "order_cancelled.text.tmpl", "Cancelled because: {{.Reason}}")
		write(t, dir, ".keep", "") // hidden files are ignored
		s, err := templates.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Render(templates.Welcome, templates.Sample())
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject != "Hi Ada Lovelace!" || !strings.Contains(r.Text, "welcome to Annals") {
			t.Errorf("welcome = %+v, want the folder's subject and the built-in text", r)
		}
		r, err = s.Render(templates.OrderCancelled, templates.Sample())
		if err != nil {
			t.Fatal(err)
		}
		if r.Text != "Cancelled because: changed my mind" {
			t.Errorf("cancellation text %q", r.Text)
		}
	})
	for _, tc := range []struct {
		name, file, text, want string
	}{
		{"UnknownFile", "welcome.txt", "x", "welcome.txt is not a template the notifier knows"},
		{"Syntax", "welcome.text.tmpl", "{{.Name", "welcome.text.tmpl"},
		{"UnknownField", "order_confirmed.html.tmpl", "{{.Shoe}}", "can't evaluate field Shoe"},
		{"EmptySubject", "order_confirmed.subject.tmpl", "  \n", "the subject is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.file, tc.text)
			_, err := templates.Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error about %q", err, tc.want)
			}
		})
	}
	t.Run("NoFolder", func(t *testing.T) {
		if _, err := templates.Load(filepath.Join(t.TempDir(), "absent")); err == nil {
			t.Error("Load of a missing folder succeeded")
		}
	})
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		cents int64
		want  string
	}{
		{0, "0.00"}, {5, "0.05"}, {1999, "19.99"}, {100000, "1000.00"}, {-5, "-0.05"}, {-1999, "-19.99"},
		{math.MaxInt64, "92233720368547758.07"}, {math.MinInt64, "-92233720368547758.08"},
	} {
		if got := templates.Money(tc.cents); got != tc.want {
			t.Errorf("Money(%d) = %q, want %q", tc.cents, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"  a  b ":               "a b",
		"Eve\r\nBcc: x@example": "Eve Bcc: x@example",
		"tab\there\x00nul":      "tab here nul",
		"\n\n":                  "",
	} {
		if got := templates.OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Secret is a value that must never be printed: every string, JSON, text
// and slog form of a non-empty Secret is "[redacted]" (an empty Secret
// prints as ""). Reveal returns the value itself.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value. Use it only where the value is needed,
// never to print it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" for an empty Secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns config.Secret("[redacted]") (or config.Secret("")).
func (s Secret) GoString() string { return "config.Secret(" + strconv.Quote(s.String()) + ")" }

// Format makes every fmt verb print the redacted form, including verbs
// that would otherwise bypass String (such as %d, which prints the raw
// value of a string type).
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, s.GoString())
	case verb == 'v' || verb == 's' || verb == 'q' || verb == 'x' || verb == 'X':
		fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
	default:
		io.WriteString(f, s.String())
	}
}

// MarshalText returns the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// LogValue returns the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

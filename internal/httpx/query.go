package httpx

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// InputError is a malformed request: path, query, header or body. Field names what is wrong
// ("limit", "If-Match", "items[2].price_cents"), or is empty when the request as a whole is,
// such as a body that is not JSON. The services answer it with a 400.
type InputError struct {
	Field   string
	Message string
}

// Error is "field: message", or the message alone when no field is named.
func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Invalidf returns an *InputError about field with a formatted message.
func Invalidf(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Query is a parsed query string that knows which parameters its route takes. Its readers
// answer a value that is absent, repeated or out of range with an *InputError that names the
// parameter.
type Query struct{ v url.Values }

// ParseQuery parses the query string of r and refuses a parameter that is not among known, so
// that a misspelt parameter is an error rather than silently ignored. A query string that
// cannot be parsed is an error on the field "query".
func ParseQuery(r *http.Request, known ...string) (Query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Query{}, Invalidf("query", "malformed query string")
	}
	for k := range v {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return Query{}, Invalidf(k, "unknown query parameter: this route takes none")
			}
			return Query{}, Invalidf(k, "unknown query parameter; this route takes %s", strings.Join(known, ", "))
		}
	}
	return Query{v}, nil
}

// One reads a parameter that may be given at most once, and reports whether it was given.
func (q Query) One(name string) (string, bool, error) {
	switch vs := q.v[name]; len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	}
	return "", false, Invalidf(name, "give it at most once")
}

// Values returns every value of a parameter that may repeat, in the order given; nil when
// absent.
func (q Query) Values(name string) []string { return q.v[name] }

// Int reads an integer in [lo, hi], and reports whether it was given; def when absent. A hi of
// math.MaxInt64 means no upper bound, and the message says so.
func (q Query) Int(name string, lo, hi, def int64) (int64, bool, error) {
	s, ok, err := q.One(name)
	if err != nil || !ok {
		return def, false, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		if hi == math.MaxInt64 {
			return 0, false, Invalidf(name, "must be an integer >= %d", lo)
		}
		return 0, false, Invalidf(name, "must be an integer from %d to %d", lo, hi)
	}
	return v, true, nil
}

// Enum reads one of the allowed values; "" when absent.
func (q Query) Enum(name string, allowed ...string) (string, error) {
	s, ok, err := q.One(name)
	if err != nil || !ok {
		return "", err
	}
	if !slices.Contains(allowed, s) {
		return "", Invalidf(name, "must be one of %s", strings.Join(allowed, ", "))
	}
	return s, nil
}

// Time reads an RFC 3339 time, and reports whether it was given; the zero time when absent. A
// '+' of the offset that arrived unescaped, and so was decoded as a space, is read as '+'.
func (q Query) Time(name string) (time.Time, bool, error) {
	s, ok, err := q.One(name)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	t, err := time.Parse(time.RFC3339, strings.Replace(s, " ", "+", 1))
	if err != nil {
		return time.Time{}, false, Invalidf(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, true, nil
}

// EncodeCursor returns the cursor of the page that follows the row id: the id,
// base64url-encoded, so that clients treat it as opaque rather than as an id to build on.
func EncodeCursor(id uuid.UUID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// DecodeCursor reads a cursor that EncodeCursor made; anything else is an error on the field
// "cursor".
func DecodeCursor(s string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return uuid.Nil, Invalidf("cursor", "is not a cursor of this API (pass next_cursor of the previous page)")
	}
	return uuid.UUID(b), nil
}

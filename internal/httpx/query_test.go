package httpx_test

import (
	"errors"
	"math"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/httpx"
)

func parse(t *testing.T, rawQuery string, known ...string) (httpx.Query, error) {
	t.Helper()
	return httpx.ParseQuery(httptest.NewRequest("GET", "/v1/things?"+rawQuery, nil), known...)
}

func mustParse(t *testing.T, rawQuery string, known ...string) httpx.Query {
	t.Helper()
	q, err := parse(t, rawQuery, known...)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", rawQuery, err)
	}
	return q
}

// wantInput checks that err is an *InputError with the given field and message.
func wantInput(t *testing.T, err error, field, message string) {
	t.Helper()
	var in *httpx.InputError
	if !errors.As(err, &in) {
		t.Fatalf("error %v (%T), want an *httpx.InputError", err, err)
	}
	if in.Field != field || in.Message != message {
		t.Errorf("error {%q, %q}, want {%q, %q}", in.Field, in.Message, field, message)
	}
}

func TestInputError(t *testing.T) {
	if got := httpx.Invalidf("limit", "must be below %d", 10).Error(); got != "limit: must be below 10" {
		t.Errorf("Error() = %q", got)
	}
	if got := httpx.Invalidf("", "malformed JSON").Error(); got != "malformed JSON" {
		t.Errorf("Error() without a field = %q, want the message alone", got)
	}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		name, rawQuery string
		known          []string
		field, message string
	}{
		{"UnknownWithKnown", "limit=1&offset=2", []string{"limit", "cursor"},
			"offset", "unknown query parameter; this route takes limit, cursor"},
		{"UnknownWithoutKnown", "verbose=1", nil, "verbose", "unknown query parameter: this route takes none"},
		{"Malformed", "limit=%zz", []string{"limit"}, "query", "malformed query string"},
		{"MalformedSemicolon", "limit=1;cursor=2", []string{"limit", "cursor"}, "query", "malformed query string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.rawQuery, tc.known...)
			wantInput(t, err, tc.field, tc.message)
		})
	}
	t.Run("Empty", func(t *testing.T) {
		mustParse(t, "")
	})
}

func TestQueryOne(t *testing.T) {
	q := mustParse(t, "a=x&b=&c=1&c=2", "a", "b", "c", "d")
	for _, tc := range []struct {
		name, want string
		present    bool
	}{
		{"a", "x", true},
		{"b", "", true},
		{"d", "", false},
	} {
		if s, ok, err := q.One(tc.name); s != tc.want || ok != tc.present || err != nil {
			t.Errorf("One(%s) = %q, %v, %v; want %q, %v", tc.name, s, ok, err, tc.want, tc.present)
		}
	}
	_, ok, err := q.One("c")
	wantInput(t, err, "c", "give it at most once")
	if ok {
		t.Error("a repeated parameter is reported present")
	}
	if got := q.Values("c"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("Values(c) = %q", got)
	}
	if got := q.Values("d"); got != nil {
		t.Errorf("Values(d) = %q, want nil", got)
	}
}

func TestQueryInt(t *testing.T) {
	q := mustParse(t, "after=42&limit=0&big=9223372036854775808&neg=-1&ten=ten&lim=1001&twice=1&twice=2",
		"after", "limit", "big", "neg", "ten", "lim", "twice", "absent")
	for _, tc := range []struct {
		name string
		want int64
	}{
		{"after", 42},
		{"limit", 0},
	} {
		if v, ok, err := q.Int(tc.name, 0, math.MaxInt64, -1); v != tc.want || !ok || err != nil {
			t.Errorf("Int(%s) = %d, %v, %v; want %d", tc.name, v, ok, err, tc.want)
		}
	}
	if v, ok, err := q.Int("absent", 1, 1000, 100); v != 100 || ok || err != nil {
		t.Errorf("Int(absent) = %d, %v, %v; want the default 100, not present", v, ok, err)
	}
	for _, tc := range []struct {
		name    string
		lo, hi  int64
		message string
	}{
		{"neg", 0, math.MaxInt64, "must be an integer >= 0"},
		{"big", 0, math.MaxInt64, "must be an integer >= 0"},
		{"ten", 0, math.MaxInt64, "must be an integer >= 0"},
		{"limit", 1, 1000, "must be an integer from 1 to 1000"},
		{"lim", 1, 1000, "must be an integer from 1 to 1000"},
		{"ten", 1, 1000, "must be an integer from 1 to 1000"},
		{"twice", 1, 1000, "give it at most once"},
	} {
		_, ok, err := q.Int(tc.name, tc.lo, tc.hi, 7)
		wantInput(t, err, tc.name, tc.message)
		if ok {
			t.Errorf("Int(%s, %d, %d) is reported present with an error", tc.name, tc.lo, tc.hi)
		}
	}
}

func TestQueryEnum(t *testing.T) {
	q := mustParse(t, "status=active&bad=asleep", "status", "bad", "absent")
	statuses := []string{"active", "deactivated"}
	if s, err := q.Enum("status", statuses...); s != "active" || err != nil {
		t.Errorf("Enum(status) = %q, %v", s, err)
	}
	if s, err := q.Enum("absent", statuses...); s != "" || err != nil {
		t.Errorf("Enum(absent) = %q, %v; want empty", s, err)
	}
	_, err := q.Enum("bad", statuses...)
	wantInput(t, err, "bad", "must be one of active, deactivated")
}

func TestQueryTime(t *testing.T) {
	// "+02:00" unescaped arrives as " 02:00"; %2B is a '+' that was escaped.
	q := mustParse(t, "utc=2026-01-02T15:04:05Z&plain=2026-01-02T17:04:05+02:00&escaped=2026-01-02T17:04:05%2B02:00"+
		"&minus=2026-01-02T13:04:05-02:00&date=2026-01-02&month=2026-13-01T00:00:00Z",
		"utc", "plain", "escaped", "minus", "date", "month", "absent")
	want := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, name := range []string{"utc", "plain", "escaped", "minus"} {
		if got, ok, err := q.Time(name); !got.Equal(want) || !ok || err != nil {
			t.Errorf("Time(%s) = %v, %v, %v; want %v", name, got, ok, err, want)
		}
	}
	if got, ok, err := q.Time("absent"); !got.IsZero() || ok || err != nil {
		t.Errorf("Time(absent) = %v, %v, %v; want the zero time, not present", got, ok, err)
	}
	for _, name := range []string{"date", "month"} {
		_, ok, err := q.Time(name)
		wantInput(t, err, name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		if ok {
			t.Errorf("Time(%s) is reported present with an error", name)
		}
	}
}

func TestCursor(t *testing.T) {
	id := uuid.MustParse("0190a4b2-7f3c-7a00-8000-000000000001")
	c := httpx.EncodeCursor(id)
	if got, err := httpx.DecodeCursor(c); got != id || err != nil {
		t.Errorf("DecodeCursor(EncodeCursor(%s)) = %s, %v", id, got, err)
	}
	// Neither text that is not base64url, nor base64url that is short or padded, nor the id
	// itself is a cursor.
	for _, s := range []string{"", "!!!", "AAAA", c + "==", id.String()} {
		_, err := httpx.DecodeCursor(s)
		wantInput(t, err, "cursor", "is not a cursor of this API (pass next_cursor of the previous page)")
	}
}

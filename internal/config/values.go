package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/pkg/signing"
)

// show is how a value appears in an error message: quoted, or not at all
// when it is secret.
func show(v string, hide bool) string {
	if hide {
		return "the value"
	}
	return strconv.Quote(v)
}

// parseRaw turns the text of a value into the Go value of its kind. It
// returns a message (without the key's name) when the text does not parse.
func parseRaw(s *spec, raw string, hide bool) (any, string) {
	switch s.Kind {
	case KindBool:
		b, ok := parseBool(strings.TrimSpace(raw))
		if !ok {
			return nil, show(raw, hide) + " is not a boolean (use true/false, yes/no, on/off or 1/0)"
		}
		return b, ""
	case KindInt:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if errors.Is(err, strconv.ErrRange) {
			return nil, show(raw, hide) + " is out of range; " + s.bounds.desc
		}
		if err != nil {
			return nil, show(raw, hide) + " is not an integer"
		}
		return n, ""
	case KindDuration:
		d, err := ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return nil, show(raw, hide) + " is not a duration (for example 15s, 1h30m, 30d, 2w, 1d12h)"
		}
		return d, ""
	case KindList:
		var list []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		return list, ""
	case KindSecret:
		return Secret(raw), ""
	default: // KindString
		for _, a := range s.Allowed {
			if strings.EqualFold(raw, a) {
				return a, ""
			}
		}
		return raw, ""
	}
}

// checkValue checks a parsed value against the key's range, allowed values
// and extra check. It returns a message (without the key's name).
func checkValue(s *spec, v any, hide bool) string {
	switch v := v.(type) {
	case int:
		if !s.bounds.contains(int64(v)) {
			return show(strconv.Itoa(v), hide) + " is out of range; " + s.bounds.desc
		}
	case time.Duration:
		if !s.bounds.contains(int64(v)) {
			return show(FormatDuration(v), hide) + " is out of range; " + s.bounds.desc
		}
	case string:
		if s.Allowed != nil && !contains(s.Allowed, v) {
			return show(v, hide) + " is not supported; allowed: " + strings.Join(s.Allowed, ", ")
		}
	}
	if s.check != nil {
		return s.check(v, hide)
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, a := range list {
		if a == v {
			return true
		}
	}
	return false
}

// load returns the value of the Config field behind a spec.
func load(s *spec, c *Config) any {
	switch p := s.field(c).(type) {
	case *bool:
		return *p
	case *int:
		return *p
	case *string:
		return *p
	case *time.Duration:
		return *p
	case *[]string:
		return *p
	case *Secret:
		return *p
	}
	panic("config: unsupported field type for " + s.Path())
}

// store sets the Config field behind a spec.
func store(s *spec, c *Config, v any) {
	switch p := s.field(c).(type) {
	case *bool:
		*p = v.(bool)
	case *int:
		*p = v.(int)
	case *string:
		*p = v.(string)
	case *time.Duration:
		*p = v.(time.Duration)
	case *[]string:
		*p = v.([]string)
	case *Secret:
		*p = v.(Secret)
	default:
		panic("config: unsupported field type for " + s.Path())
	}
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// ParseDuration parses a Go duration ("15s", "1h30m", "-2m") that may also
// use whole days and weeks: "30d", "2w", "1d12h". A day is 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	var b strings.Builder
	if s != "" && (s[0] == '-' || s[0] == '+') {
		b.WriteByte(s[0])
		s = s[1:]
	}
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num := s[:i]
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[i:j]
		s = s[j:]
		if unit != "d" && unit != "w" {
			b.WriteString(num + unit)
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("time: invalid duration %q (days and weeks must be whole numbers)", orig)
		}
		hours := uint64(24)
		if unit == "w" {
			hours = 7 * 24
		}
		if n > (1<<63-1)/uint64(time.Hour)/hours {
			return 0, fmt.Errorf("time: invalid duration %q (too large)", orig)
		}
		b.WriteString(strconv.FormatUint(n*hours, 10) + "h")
	}
	d, err := time.ParseDuration(b.String())
	if err != nil {
		return 0, fmt.Errorf("time: invalid duration %q", orig)
	}
	return d, nil
}

// FormatDuration writes d like time.Duration.String, but whole weeks and
// days as "2w" and "30d" ("1d12h0m0s" for a day and a half).
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d <= 0 || d%day != 0 && d < day {
		return d.String()
	}
	switch {
	case d%(7*day) == 0:
		return strconv.FormatInt(int64(d/(7*day)), 10) + "w"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	default:
		return strconv.FormatInt(int64(d/day), 10) + "d" + (d % day).String()
	}
}

// checkHostPort checks "host:port" with a numeric port in [minPort, 65535];
// the host is required unless hostOptional.
func checkHostPort(addr string, hostOptional bool, minPort int) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" && !hostOptional {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= minPort && n <= 65535 && !strings.HasPrefix(port, "+")
}

func checkDialAddr(v any, hide bool) string {
	if s := v.(string); !checkHostPort(s, false, 1) {
		return show(s, hide) + " is not host:port (for example 127.0.0.1:1025)"
	}
	return ""
}

func checkListenAddr(v any, hide bool) string {
	if s := v.(string); s != "" && !checkHostPort(s, true, 0) {
		return show(s, hide) + " is not host:port or :port (or empty for the service's default)"
	}
	return ""
}

func checkBrokers(v any, hide bool) string {
	list := v.([]string)
	if len(list) == 0 {
		return "at least one broker is required (comma-separated host:port)"
	}
	for _, b := range list {
		if !checkHostPort(b, false, 1) {
			return "broker " + show(b, hide) + " is not host:port (for example 127.0.0.1:9092)"
		}
	}
	return ""
}

func checkTopicPrefix(v any, hide bool) string {
	s := v.(string)
	ok := s != "" && len(s) <= 200
	for i := 0; ok && i < len(s); i++ {
		ok = isAlnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'
	}
	if !ok {
		return show(s, hide) + " is not a valid topic prefix (1 to 200 letters, digits, '.', '_' or '-')"
	}
	return ""
}

func checkMailAddress(v any, hide bool) string {
	s := v.(string)
	if _, err := mail.ParseAddress(s); err != nil {
		return show(s, hide) + " is not an email address (for example Annals <noreply@example.com>)"
	}
	return ""
}

// checkSigningKey checks a secret signing key; the message never quotes it (only its id).
func checkSigningKey(v any, _ bool) string {
	if s := v.(Secret).Reveal(); s != "" {
		if _, err := signing.ParseKey(s); err != nil {
			return err.Error()
		}
	}
	return ""
}

// checkSigningKeys checks a secret list of signing keys; the message never quotes them.
func checkSigningKeys(v any, _ bool) string {
	if _, err := signing.ParseKeys(v.(Secret).Reveal()); err != nil {
		return err.Error()
	}
	return ""
}

// checkAPIKeys checks API_KEYS; the message never quotes a hash.
func checkAPIKeys(v any, _ bool) string {
	if _, err := auth.ParseAPIKeys(v.(Secret).Reveal()); err != nil {
		return err.Error()
	}
	return ""
}

// checkIssuer checks an issuer: empty, or an https URL (http only on a loopback host).
func checkIssuer(v any, hide bool) string {
	s := v.(string)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return show(s, hide) + " is not an https URL (http only on 127.0.0.1, ::1 or localhost)"
	}
	return ""
}

// checkOTLPEndpoint checks a trace receiver's base URL: empty, or http(s)://host[:port][/path].
func checkOTLPEndpoint(v any, hide bool) string {
	s := v.(string)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" {
		return show(s, hide) + " is not an http:// or https:// URL of an OTLP receiver, such as http://127.0.0.1:4318"
	}
	return ""
}

// checkRatio checks a share: a number from 0 to 1.
func checkRatio(v any, hide bool) string {
	s := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return show(s, hide) + " is not a number from 0 to 1"
	}
	return ""
}

// checkOptionalURL checks an optional key set URL like an issuer.
func checkOptionalURL(v any, hide bool) string { return checkIssuer(v, hide) }

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkAlgorithms accepts only asymmetric JWS algorithms.
func checkAlgorithms(v any, _ bool) string {
	o := auth.OIDC{Issuer: "x", Audience: "x", Algorithms: v.([]string)}
	if err := o.Validate(); err != nil {
		return err.Error()
	}
	return ""
}

// checkPostgresURL checks a secret URL; the message never quotes it.
func checkPostgresURL(v any, _ bool) string {
	s := v.(Secret).Reveal()
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Opaque != "" {
		return "the value is not a postgres:// or postgresql:// URL"
	}
	return ""
}

// checkRedisURL checks a secret redis:// or rediss:// URL; the message never quotes it.
func checkRedisURL(v any, _ bool) string {
	s := v.(Secret).Reveal()
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Opaque != "" || u.Host == "" {
		return "the value is not a redis:// or rediss:// URL with a host"
	}
	return ""
}

// checkMongoURI checks a secret mongodb:// or mongodb+srv:// URI; the message never quotes it.
func checkMongoURI(v any, _ bool) string {
	s := v.(Secret).Reveal()
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Opaque != "" || u.Host == "" {
		return "the value is not a mongodb:// or mongodb+srv:// URI with a host"
	}
	return ""
}

// checkNotEmpty refuses an empty value.
func checkNotEmpty(v any, _ bool) string {
	if v.(string) == "" {
		return "must not be empty"
	}
	return ""
}

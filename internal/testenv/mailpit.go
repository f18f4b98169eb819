package testenv

import (
	"strings"
	"testing"
)

// SMTPAddr is the host:port of the test SMTP server (Mailpit's SMTP port).
func SMTPAddr(tb testing.TB) string {
	tb.Helper()
	return lookup(tb, "SMTP_ADDR", "a real SMTP server (Mailpit)")
}

// MailpitURL is the base URL of Mailpit's web UI and REST API (http://host:port), where tests
// read the email that reached the SMTP server.
func MailpitURL(tb testing.TB) string {
	tb.Helper()
	return strings.TrimSuffix(lookup(tb, "MAILPIT_URL", "Mailpit's REST API"), "/")
}

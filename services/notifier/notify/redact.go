package notify

import (
	"regexp"
	"strings"
)

// RedactedRecipient replaces a recipient's address in the texts of SMTP errors.
const RedactedRecipient = "[recipient]"

// emailLike matches anything that reads as an email address in a server's text.
var emailLike = regexp.MustCompile(`[^\s<>()\[\]"',;:@]+@[^\s<>()\[\]"',;:@]+`)

// redactedError is an error whose text has the recipient's address, and anything else that
// reads as an email address, replaced by RedactedRecipient: a server's answer usually repeats
// the address, and the text of a failed email's error goes to the dead-letter topic, the logs
// and annals_consumer_blocks, where it would outlive an erasure of the user. Unwrap gives the
// original error for classification (errors.Is/As); its text must not be printed.
type redactedError struct {
	text string
	err  error
}

func (r redactedError) Error() string { return r.text }
func (r redactedError) Unwrap() error { return r.err }

// redact returns err with its text redacted (see redactedError); keep (the email's
// Message-ID, without its angle brackets) is left as it is.
func redact(err error, address, keep string) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if address != "" {
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(address)).ReplaceAllString(text, RedactedRecipient)
	}
	text = emailLike.ReplaceAllStringFunc(text, func(m string) string {
		if keep != "" && strings.EqualFold(m, keep) {
			return m
		}
		return RedactedRecipient
	})
	return redactedError{text: text, err: err}
}

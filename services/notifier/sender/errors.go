package sender

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// ErrInvalid marks an email that Send refuses to write: a malformed recipient address, a
// subject or header value with a line break, a malformed Message-ID. Nothing was sent.
var ErrInvalid = errors.New("invalid email")

// Error is a failed delivery.
type Error struct {
	// Stage is what failed: "connect", "NOOP", "MAIL FROM", "RCPT TO", "DATA", "message",
	// "end of message", "rate limit", ...
	Stage string
	// Code is the server's SMTP reply code, and Enhanced its enhanced status code (such as
	// 5.1.1) when it gave one; 0 and "" when the server did not answer.
	Code     int
	Enhanced string
	// Permanent says the server refused this email for good: a 5xx reply to RCPT TO, DATA
	// or the end of the message. Trying again cannot help.
	Permanent bool
	// Unknown says the connection broke after the end of the message and before the
	// server's reply: the server may have accepted the email.
	Unknown bool
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp ")
	b.WriteString(e.Stage)
	if e.Unknown {
		b.WriteString(" (outcome unknown: the server may have accepted the email)")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err says that sending the same email again cannot succeed: the
// email is invalid, or the server refused it for good.
func IsPermanent(err error) bool {
	var e *Error
	return errors.Is(err, ErrInvalid) || errors.As(err, &e) && e.Permanent
}

// connectError describes a failure to connect, greet, start TLS or authenticate. It is never
// permanent: it concerns every email alike.
func connectError(err error) *Error {
	e := &Error{Stage: "connect", Err: err}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		e.Code = tp.Code
	}
	return e
}

// sendError describes a failure of the library's Send, and reports whether it only showed that
// a reused connection was dead before anything of the email reached the server.
func sendError(err error) (*Error, bool) {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return &Error{Stage: "send", Err: err}, false
	}
	e := &Error{Code: se.ErrorCode(), Enhanced: se.EnhancedStatusCode(), Err: err}
	stale := false
	switch se.Reason {
	case gomail.ErrConnCheck:
		e.Stage, stale = "NOOP", true
	case gomail.ErrSMTPMailFrom:
		e.Stage, stale = "MAIL FROM", e.Code == 0
	case gomail.ErrSMTPRcptTo:
		e.Stage, e.Permanent = "RCPT TO", e.Code >= 500
	case gomail.ErrSMTPData:
		e.Stage, e.Permanent = "DATA", e.Code >= 500
	case gomail.ErrWriteContent:
		e.Stage = "message"
	case gomail.ErrSMTPDataClose:
		e.Stage, e.Permanent, e.Unknown = "end of message", e.Code >= 500, e.Code == 0
	case gomail.ErrSMTPReset:
		e.Stage = "RSET"
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		e.Stage, e.Permanent = "addresses", true
	default:
		e.Stage = fmt.Sprintf("send (%s)", se.Reason)
	}
	return e, stale
}

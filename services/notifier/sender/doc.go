// Package sender delivers the notifier's emails over SMTP with github.com/wneessen/go-mail:
// STARTTLS (none, opportunistic or required), SMTP AUTH when a user name is configured,
// connections kept open and reused, and an optional rate limit in emails per second.
//
// It says what a failure means for the email, which is all its caller needs to decide between
// retrying and giving up:
//
//   - a 5xx reply to RCPT TO, to DATA or to the message itself (after the final ".") is the
//     server refusing this email for good: Error.Permanent;
//   - everything else is transient and worth trying again later: the server cannot be
//     reached, refuses connections, times out, answers 4xx, drops the connection, or refuses
//     our sender or our credentials (a 5xx reply to MAIL FROM, a failed AUTH): those concern
//     every email alike, so no single email should be given up for them;
//   - a connection that breaks after the final "." of a message, before the server's reply,
//     leaves the outcome unknown (Error.Unknown): the server may have accepted the email. A
//     retry can then deliver it twice, with the same Message-ID. SMTP has no way to close that
//     window; the caller bounds its cost.
//
// An email whose headers would be malformed (CR or LF in the subject, the Message-ID, an extra
// header or the recipient's address) is refused before anything is sent (ErrInvalid). A
// recipient's display name is never refused: the library writes it as an RFC 2047 encoded
// word when it holds anything beyond printable ASCII, so a line break in a name cannot start a
// header of its own.
//
// The package knows nothing of events, templates or the sent log.
package sender

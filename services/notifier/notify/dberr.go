package notify

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/pkg/consume"
)

// dbError marks a database error for the consumer runtime: the database being unreachable is
// Unavailable (the group waits for it instead of dead-lettering), data the database refuses
// (class 22: a NUL byte in a text, say) is Permanent, anything else is an ordinary failure
// that is retried and then dead-lettered.
func dbError(err error) error {
	switch {
	case err == nil:
		return nil
	case databaseDown(err):
		return consume.Unavailable(err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return consume.Permanent(err)
	}
	return err
}

// databaseDown reports errors that say the server, not the statement, is the problem.
func databaseDown(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || // connection exception
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || // shutdown, cannot connect now
			pe.Code == "53300" // too many connections
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

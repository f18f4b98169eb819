package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// What a failed statement says about whose fault it is. Every service decides by these alone,
// the APIs between 503 and 500 and the consumers between waiting, retrying and dead-lettering,
// so that a failure reads the same everywhere.

// Unreachable reports whether err says that the server, not the statement, is the problem,
// until the server is back: a connection refused, lost or timed out (a network error, end of
// file, a deadline), SQLSTATE class 08 (connection exception), 57P01 admin_shutdown,
// 57P02 crash_shutdown, 57P03 cannot_connect_now or 53300 too_many_connections. A consumer
// waits for the database (consume.Unavailable) rather than counting it against the message.
func Unreachable(err error) bool {
	if down, ok := serverSays(err); ok {
		return down
	}
	return connectionFailed(err)
}

// ServerDown is Unreachable judged only on what PostgreSQL and pgx report: the SQLSTATEs
// above, a connection that could not be made, a pgx timeout. It is for an error that may
// carry failures of other kinds, such as what a consumer's handler returns: the handler wraps
// errors of its decoders and of other services, and their end of file, network error or
// deadline says nothing about the database.
func ServerDown(err error) bool {
	if down, ok := serverSays(err); ok {
		return down
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.Timeout(err)
}

// serverSays reports, for an error with a SQLSTATE (ok), whether it is one of the server
// being unreachable.
func serverSays(err error) (down, ok bool) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false, false
	}
	switch pg.Code {
	case "57P01", "57P02", "57P03", "53300":
		return true, true
	}
	return sqlClass(pg) == "08", true
}

// Transient reports whether the same request may succeed later as it is: Unreachable, any
// other error of the connection, the server out of resources (class 53: disk full, out of
// memory) or stopping the statement (class 57: a statement timeout, an operator's
// cancellation), or the request's context ended. An API answers it with 503 and "retry
// later"; a consumer retries it like any failure of a message, within the message's attempts.
func Transient(err error) bool {
	if Unreachable(err) || connectionFailed(err) || errors.Is(err, context.Canceled) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch sqlClass(pg) {
		case "08", "53", "57":
			return true
		}
	}
	return false
}

// DataException reports whether the server refused a value of the statement, SQLSTATE
// class 22 (a NUL byte in a text, a number out of range, an invalid encoding): the same data
// fails again, so a consumer dead-letters it at once (consume.Permanent).
func DataException(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && sqlClass(pg) == "22"
}

// IntegrityViolation reports whether the statement broke a constraint, SQLSTATE class 23 (a
// check, not-null, foreign key or unique constraint).
func IntegrityViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && sqlClass(pg) == "23"
}

// Conflict reports whether the transaction lost a race with another, SQLSTATE 40001
// serialization_failure or 40P01 deadlock_detected: the same work, run again from the start,
// may succeed.
func Conflict(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01")
}

// UndefinedTable reports whether the statement named a table that does not exist, SQLSTATE
// 42P01: a schema not migrated yet, or a table dropped while the statement was on its way.
func UndefinedTable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "42P01"
}

// connectionFailed reports errors of the connection rather than of the server's answer.
func connectionFailed(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// sqlClass is the class of an error's SQLSTATE, its first two characters; "" when malformed.
func sqlClass(pg *pgconn.PgError) string {
	if len(pg.Code) != 5 {
		return ""
	}
	return pg.Code[:2]
}

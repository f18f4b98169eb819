package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// What a failed statement says about whose fault it is. Every service decides by these alone,
// the APIs between 503 and 500 and the consumers between pausing, retrying and dead-lettering,
// so that a failure reads the same everywhere:
//
//   - Transient (Unreachable among them): the server's or the moment's fault. The same
//     statement may succeed later as it is. An API answers 503; a consumer pauses and tries
//     again, however long it takes, and never dead-letters an event for it.
//   - DataException: the statement's data. The same data fails again; a consumer dead-letters
//     the event at once.
//   - IntegrityViolation: a constraint the statement broke; whose fault that is depends on
//     what the constraint guards, so the caller decides.
//   - anything else (a missing table, a syntax error, an internal error): unknown. A consumer
//     retries it a few times and then dead-letters the event.

// Unreachable reports whether err says that the server, not the statement, is the problem,
// until the server is back: a connection refused, lost or timed out (a network error, end of
// file, a deadline), SQLSTATE class 08 (connection exception), 57P01 admin_shutdown,
// 57P02 crash_shutdown, 57P03 cannot_connect_now or 53300 too_many_connections.
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

// Transient reports whether the same request may succeed later as it is, because the failure
// was the server's or the moment's and not the statement's: Unreachable; any other error of
// the connection; the server out of resources (class 53: disk full, out of memory, too many
// connections); the statement stopped from outside (class 57: a statement timeout, an
// operator's cancellation, a shutdown); a transaction that lost a race (40001
// serialization_failure, 40P01 deadlock_detected, 40003 statement_completion_unknown, 55P03
// lock_not_available); a server that accepts no writes for now (25006
// read_only_sql_transaction, as a standby answers during a failover); an error of the
// server's own system (class 58: an I/O error); or the request's context ended. An API
// answers it with 503 and "retry later"; a consumer pauses (consume.Unavailable) and tries
// again without counting it against the event.
func Transient(err error) bool {
	if Unreachable(err) || connectionFailed(err) || errors.Is(err, context.Canceled) {
		return true
	}
	return serverTransient(err)
}

// ServerTransient is Transient judged only on what PostgreSQL and pgx report (ServerDown, and
// the SQLSTATEs above), for an error that may carry failures of other kinds: a consumer's
// handler wraps errors of its decoders and of other services, whose end of file, network
// error, deadline or cancellation says nothing about the database.
func ServerTransient(err error) bool { return ServerDown(err) || serverTransient(err) }

// serverTransient reports whether err has a SQLSTATE of a failure of the server or of the
// moment.
func serverTransient(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.Code {
	case "40001", "40P01", "40003", "55P03", "25006":
		return true
	}
	switch sqlClass(pg) {
	case "08", "53", "57", "58":
		return true
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

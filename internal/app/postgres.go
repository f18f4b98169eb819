package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
)

// CheckPostgres connects to PostgreSQL once, at start, through pool, within a few seconds. A
// server that refuses the connection's transport security (no TLS where it requires TLS, a
// certificate the CA file does not trust, that names another host or has expired, TLS where
// it has none) is an error of one line naming the setting at fault (EVENT_STORE_* or
// DATABASE_URL's parameter) and what was expected, never the password: the program stops at
// once instead of retrying what no retry cures. Anything else (a server that cannot be
// reached, or refuses the credentials, which an operator may be about to grant) is logged to
// log (when not nil), and CheckPostgres returns nil: the program waits for it as before.
func CheckPostgres(ctx context.Context, c config.EventStore, pool *pgxpool.Pool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, startupProbe)
	defer cancel()
	err := pool.Ping(ctx)
	if err == nil {
		return nil
	}
	explained := ExplainPostgres(err, c)
	var refused *RefusedError
	if errors.As(explained, &refused) && refused.Transport {
		return explained
	}
	log.Warn("postgres: cannot connect yet; going on, and waiting for it", "error", explained)
	return nil
}

// ExplainPostgres returns err as an error naming the setting at fault when it is PostgreSQL
// refusing the connection's security settings or credentials, and err itself otherwise.
func ExplainPostgres(err error, c config.EventStore) error {
	s := pgSettings(c)
	var msg string
	transport := true
	var pgErr *pgconn.PgError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "28000" && strings.Contains(pgErr.Message, "no encryption"):
		msg = fmt.Sprintf("postgres: the server requires TLS, and %s does not use it (want sslmode=verify-full, with %s naming the file of the CA that signs the server's certificate)",
			s.setting("sslmode", s.mode), s.name("sslrootcert"))
	case errors.As(err, &pgErr) && pgErr.Code == "28P01":
		msg = fmt.Sprintf("postgres: password authentication failed for user %q (%s)", s.user, s.credentials)
		transport = false
	case errors.As(err, &pgErr) && pgErr.Code == "28000":
		msg = fmt.Sprintf("postgres: the server refuses the connection (its pg_hba.conf; %s, %s): %s", s.setting("sslmode", s.mode), s.credentials, pgErr.Message)
		transport = false
	case errors.As(err, &unknown):
		if s.rootCert == "" {
			msg = fmt.Sprintf("postgres: the certificate of the server is not trusted by the system's roots (%s is empty: name the file of the CA that signs the server's certificate)", s.name("sslrootcert"))
		} else {
			msg = fmt.Sprintf("postgres: the certificate of the server is not trusted by %s (it must hold the CA that signs the server's certificate)", s.setting("sslrootcert", s.rootCert))
		}
	case errors.As(err, &host):
		msg = fmt.Sprintf("postgres: the certificate of the server does not name the host the client dialled: the host in %s must be among its names", s.hostSetting)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		msg = fmt.Sprintf("postgres: the certificate of the server has expired or is not valid yet (or this machine's clock is wrong): the server in %s must present a valid certificate", s.hostSetting)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		msg = fmt.Sprintf("postgres: the server does not speak TLS, but %s expects it (sslmode=disable, or a server with ssl = on)", s.setting("sslmode", s.mode))
	default:
		return err
	}
	return &RefusedError{msg: msg, Transport: transport, Err: err}
}

// RefusedError is PostgreSQL refusing a connection for its settings, with a message that
// names the settings at fault; it wraps the driver's error, which it does not show (that can
// be long, and of several lines).
type RefusedError struct {
	msg string
	// Transport is set when the fault is the connection's TLS (sslmode, the CA file, the
	// server's certificate), not its credentials.
	Transport bool
	Err       error
}

func (e *RefusedError) Error() string { return e.msg }
func (e *RefusedError) Unwrap() error { return e.Err }

// pgConnSettings are the names and values of the settings a PostgreSQL connection was built
// from: DATABASE_URL's parameters, or the EVENT_STORE_* keys.
type pgConnSettings struct {
	fromURL                  bool
	mode, rootCert, user     string
	credentials, hostSetting string
}

func pgSettings(c config.EventStore) pgConnSettings {
	if c.URL == "" {
		mode := c.SSLMode
		if mode == "" {
			mode = "disable"
		}
		return pgConnSettings{mode: mode, rootCert: c.SSLRootCert, user: c.Username,
			credentials: "EVENT_STORE_USERNAME/EVENT_STORE_PASSWORD", hostSetting: "EVENT_STORE_HOST"}
	}
	s := pgConnSettings{fromURL: true, mode: "prefer", credentials: "the user and password of DATABASE_URL", hostSetting: "DATABASE_URL"}
	if u, err := url.Parse(c.URL.Reveal()); err == nil {
		q := u.Query()
		if m := q.Get("sslmode"); m != "" {
			s.mode = m
		}
		s.rootCert = q.Get("sslrootcert")
		if u.User != nil {
			s.user = u.User.Username()
		}
	}
	return s
}

// name is the name of a connection parameter: sslmode in DATABASE_URL, or
// EVENT_STORE_SSLMODE.
func (s pgConnSettings) name(param string) string {
	if s.fromURL {
		return param + " in DATABASE_URL"
	}
	return "EVENT_STORE_" + strings.ToUpper(param)
}

func (s pgConnSettings) setting(param, value string) string {
	if value == "" {
		return s.name(param) + " (empty)"
	}
	if s.fromURL {
		return param + "=" + value + " in DATABASE_URL"
	}
	return "EVENT_STORE_" + strings.ToUpper(param) + "=" + value
}

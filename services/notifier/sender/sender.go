package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
	"golang.org/x/time/rate"
)

// TLSMode says when the connection is encrypted with STARTTLS.
type TLSMode string

// The STARTTLS modes.
const (
	TLSNone          TLSMode = "none"          // never: plain text only
	TLSOpportunistic TLSMode = "opportunistic" // when the server offers STARTTLS
	TLSRequired      TLSMode = "required"      // always: a server without STARTTLS is an error
)

// Config configures a Sender. Zero values take the defaults noted.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// From is the sender, an RFC 5322 address such as "Annals <noreply@annals.local>"; it is
	// the From header and the envelope sender.
	From string
	// Username and Password authenticate with SMTP AUTH when Username is set. The mechanism
	// is the best one the server offers; PLAIN and LOGIN only over an encrypted connection.
	Username string
	Password string
	// TLS is the STARTTLS mode (TLSOpportunistic). TLSConfig replaces the default TLS
	// settings, which verify the server's certificate for the host of Addr.
	TLS       TLSMode
	TLSConfig *tls.Config
	// Timeout bounds connecting and each exchange with the server (10 s).
	Timeout time.Duration
	// Conns is how many idle connections are kept for reuse (8); IdleTimeout is how long one
	// may stay idle before it is closed rather than reused (30 s).
	Conns       int
	IdleTimeout time.Duration
	// Rate is the most emails per second that Send lets through, across all callers; 0
	// means no limit.
	Rate float64
	// HELO is the name given in EHLO (the machine's host name when empty).
	HELO string
	// UserAgent, when set, is written as the User-Agent and X-Mailer headers.
	UserAgent string
}

// Email is one message to one recipient.
type Email struct {
	// MessageID is the Message-ID without angle brackets, such as id@example.com.
	MessageID string
	// To is the recipient. Its Address must be a bare address; its Name may hold anything.
	To mail.Address
	// Subject is one line of text.
	Subject string
	// Text is the plain-text body; HTML, when set, its HTML alternative.
	Text string
	HTML string
	// Headers are extra header fields, such as X-Annals-Event-ID. Names are tokens of
	// letters, digits and dashes; values are one line.
	Headers map[string]string
}

// Sender sends Emails over SMTP. It is safe for concurrent use: each Send takes a connection
// of its own from the idle ones, or opens one.
type Sender struct {
	cfg     Config
	client  *gomail.Client
	from    *mail.Address
	limiter *rate.Limiter
	idle    chan *conn

	mu     sync.Mutex
	closed bool
}

type conn struct {
	c    *smtp.Client
	used time.Time
}

// New checks cfg and returns a Sender. It connects to nothing yet.
func New(cfg Config) (*Sender, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 8
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSOpportunistic
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("sender: negative rate %g", cfg.Rate)
	}
	host, portText, err := net.SplitHostPort(cfg.Addr)
	port, perr := strconv.Atoi(portText)
	if err != nil || host == "" || perr != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("sender: address %q is not host:port", cfg.Addr)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender: from %q is not an email address: %w", cfg.From, err)
	}
	if err := checkAddress(from.Address); err != nil {
		return nil, fmt.Errorf("sender: from: %w", err)
	}
	// No RSET after a message the server accepted: its reply ends the transaction (RFC 5321,
	// 4.1.1.4). The NOOP before each message stays: it finds a connection the server dropped
	// while idle before any of the message is sent.
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(cfg.Timeout), gomail.WithoutRset()}
	switch cfg.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSRequired:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		return nil, fmt.Errorf("sender: TLS mode %q is not one of none, opportunistic, required", cfg.TLS)
	}
	if cfg.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(cfg.TLSConfig))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	s := &Sender{cfg: cfg, client: client, from: from, idle: make(chan *conn, cfg.Conns)}
	if cfg.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	return s, nil
}

// From is the sender's address.
func (s *Sender) From() mail.Address { return *s.from }

// Domain is the domain of the sender's address, for Message-IDs.
func (s *Sender) Domain() string {
	return s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
}

// Send delivers e. It returns nil once the server has accepted the email, ErrInvalid (wrapped)
// for an email it refuses to write, and an *Error for a failure of the delivery; see the
// package comment for which failures are permanent. A connection found broken before the
// email was handed over is replaced once, transparently.
func (s *Sender) Send(ctx context.Context, e Email) error {
	msg, err := s.message(e)
	if err != nil {
		return err
	}
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return &Error{Stage: "rate limit", Err: err}
		}
	}
	for retried := false; ; retried = true {
		c, reused, err := s.get(ctx)
		if err != nil {
			return connectError(err)
		}
		err = s.client.SendWithSMTPClient(c.c, msg)
		if err == nil {
			s.put(c)
			return nil
		}
		s.discard(c)
		if msg.IsDelivered() {
			return nil // accepted; only what followed the server's 250 failed
		}
		se, stale := sendError(err)
		if stale && reused && !retried {
			s.drain() // the server went away: the other idle connections are gone too
			continue
		}
		return se
	}
}

// Close closes the idle connections (politely, with QUIT). Connections in use are closed
// when their Send returns.
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for {
		select {
		case c := <-s.idle:
			if err := s.client.CloseWithSMTPClient(c.c); err != nil {
				errs = append(errs, err)
				_ = c.c.Close()
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// get returns an idle connection (reused true) or a new one.
func (s *Sender) get(ctx context.Context) (*conn, bool, error) {
	for {
		select {
		case c := <-s.idle:
			if time.Since(c.used) > s.cfg.IdleTimeout || c.c.UpdateDeadline(s.cfg.Timeout) != nil {
				_ = c.c.Close()
				continue
			}
			return c, true, nil
		default:
		}
		break
	}
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, false, err
	}
	return &conn{c: c}, false, nil
}

// put keeps c for reuse, or closes it when enough are kept or the Sender is closed.
func (s *Sender) put(c *conn) {
	c.used = time.Now()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		select {
		case s.idle <- c:
			return
		default:
		}
	}
	if err := s.client.CloseWithSMTPClient(c.c); err != nil {
		_ = c.c.Close()
	}
}

// discard closes c without a word to the server: after a failure its state is unknown.
func (s *Sender) discard(c *conn) { _ = c.c.Close() }

// drain discards every idle connection.
func (s *Sender) drain() {
	for {
		select {
		case c := <-s.idle:
			s.discard(c)
		default:
			return
		}
	}
}

// message builds the library's message from e, refusing what would break its headers.
func (s *Sender) message(e Email) (*gomail.Msg, error) {
	if err := checkAddress(e.To.Address); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	if strings.ContainsFunc(e.Subject, unicode.IsControl) {
		return nil, fmt.Errorf("%w: the subject %q contains a line break or another control character", ErrInvalid, e.Subject)
	}
	if !validMessageID(e.MessageID) {
		return nil, fmt.Errorf("%w: %q is not a Message-ID (want local@domain, printable ASCII without <>)", ErrInvalid, e.MessageID)
	}
	names := make([]string, 0, len(e.Headers))
	for name, value := range e.Headers {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%w: %q is not a header name", ErrInvalid, name)
		}
		if strings.ContainsFunc(value, unicode.IsControl) {
			return nil, fmt.Errorf("%w: the value of header %s contains a line break or another control character", ErrInvalid, name)
		}
		names = append(names, name)
	}
	slices.Sort(names)

	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.SetAddrHeaderFromMailAddress(gomail.HeaderFrom, s.from)
	to := e.To
	m.ToMailAddress(&to) // the library writes the name as an encoded word when it needs one
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(e.MessageID)
	m.SetDate()
	if s.cfg.UserAgent != "" {
		m.SetUserAgent(s.cfg.UserAgent)
	}
	for _, name := range names {
		m.SetGenHeader(gomail.Header(name), e.Headers[name])
	}
	m.SetBodyString(gomail.TypeTextPlain, e.Text)
	if e.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	}
	return m, nil
}

// checkAddress accepts a bare address (local@domain) without control characters.
func checkAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: empty address", ErrInvalid)
	}
	if strings.ContainsFunc(addr, unicode.IsControl) {
		return fmt.Errorf("%w: the address %q contains a line break or another control character", ErrInvalid, addr)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return fmt.Errorf("%w: %q is not a bare email address", ErrInvalid, addr)
	}
	return nil
}

func validMessageID(id string) bool {
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 || strings.Count(id, "@") != 1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

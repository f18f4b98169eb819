package notifiertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server of the test's own (github.com/emersion/go-smtp) whose
// answers the test chooses: to RCPT TO per recipient a permanent refusal (Reject) or a number
// of temporary ones (Defer), to MAIL FROM a number of temporary refusals (DeferMail), to the
// end of a message per recipient a number of temporary refusals (DeferData). It keeps the
// messages it accepts. With SMTPOptions it offers
// STARTTLS, requires AUTH PLAIN, or takes its time over each message.
type SMTPServer struct {
	addr  string
	opts  SMTPOptions
	roots *x509.CertPool

	mu        sync.Mutex
	rejected  map[string]*smtp.SMTPError
	deferred  map[string]int
	mailCode  int
	mailTimes int
	dataCode  map[string]int
	dataTimes map[string]int
	received  []Received
	attempts  map[string]int
}

// SMTPOptions are the server's security settings.
type SMTPOptions struct {
	// TLS offers STARTTLS with a certificate for 127.0.0.1 that RootCAs trusts.
	TLS bool
	// Username and Password, when set, are required (AUTH PLAIN, only over TLS) before MAIL.
	Username, Password string
	// Delay is how long the server takes over each message before it accepts it: a slow
	// mail server.
	Delay time.Duration
}

// Received is a message the server accepted.
type Received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session ran over TLS
	User string // who authenticated
}

// NewSMTPServer starts a server without TLS or authentication on a free loopback port; it
// stops when the test ends.
func NewSMTPServer(tb testing.TB) *SMTPServer { return NewSMTPServerWith(tb, SMTPOptions{}) }

// NewSMTPServerWith starts a server with the given options.
func NewSMTPServerWith(tb testing.TB, o SMTPOptions) *SMTPServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &SMTPServer{addr: ln.Addr().String(), opts: o, rejected: map[string]*smtp.SMTPError{}, deferred: map[string]int{},
		dataCode: map[string]int{}, dataTimes: map[string]int{}, attempts: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s, conn: c}, nil }))
	srv.Domain = "smtp.test.invalid"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 1 << 20
	if o.TLS {
		cert, roots := selfSigned(tb)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.roots = roots
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return s
}

// RootCAs trusts the server's certificate (nil without TLS).
func (s *SMTPServer) RootCAs() *x509.CertPool { return s.roots }

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "notifier test SMTP server"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

// Addr is the server's address.
func (s *SMTPServer) Addr() string { return s.addr }

// Reject makes the server refuse rcpt for good: 550 5.1.1 at RCPT TO, with a text that
// repeats the address, as most servers' do.
func (s *SMTPServer) Reject(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected[strings.ToLower(rcpt)] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "<" + rcpt + ">: no such mailbox here"}
}

// Defer makes the server answer 451 4.3.0 at RCPT TO for rcpt the next times times.
func (s *SMTPServer) Defer(rcpt string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deferred[strings.ToLower(rcpt)] = times
}

// DeferMail makes the server answer code (a 4xx reply such as 421 or 451) to the next times
// MAIL FROM commands, whoever the email is for.
func (s *SMTPServer) DeferMail(code, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailCode, s.mailTimes = code, times
}

// DeferData makes the server answer code (a 4xx reply such as 451 or 452) to the end of the
// next times messages to rcpt, after it received the whole message, and drop them.
func (s *SMTPServer) DeferData(rcpt string, code, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataCode[strings.ToLower(rcpt)], s.dataTimes[strings.ToLower(rcpt)] = code, times
}

// deferral is a temporary refusal with code.
func deferral(code int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
}

// Attempts counts the RCPT TO commands the server received for rcpt.
func (s *SMTPServer) Attempts(rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[strings.ToLower(rcpt)]
}

// Received returns the messages the server accepted so far.
func (s *SMTPServer) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

type session struct {
	s    *SMTPServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.opts.Username == "" {
		return nil, smtp.ErrAuthUnsupported
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mailTimes > 0 {
		s.mailTimes--
		return deferral(s.mailCode)
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	key := strings.ToLower(to)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[key]++
	if e, ok := s.rejected[key]; ok {
		return e
	}
	if n := s.deferred[key]; n > 0 {
		s.deferred[key] = n - 1
		return deferral(451)
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(ss.s.opts.Delay) // the slow server's work, not synchronisation
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	for _, to := range ss.to {
		key := strings.ToLower(to)
		if n := ss.s.dataTimes[key]; n > 0 {
			ss.s.dataTimes[key] = n - 1
			return deferral(ss.s.dataCode[key])
		}
	}
	_, tlsOn := ss.conn.TLSConnectionState()
	ss.s.received = append(ss.s.received, Received{From: ss.from, To: ss.to, Data: b, TLS: tlsOn, User: ss.user})
	return nil
}

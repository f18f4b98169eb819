package sender_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/sender"
)

func newSender(tb testing.TB, addr string, cfg sender.Config) *sender.Sender {
	tb.Helper()
	cfg.Addr = addr
	if cfg.From == "" {
		cfg.From = "Annals Test <noreply@annals.local>"
	}
	if cfg.TLS == "" {
		cfg.TLS = sender.TLSNone
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := sender.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func email(to, id string) sender.Email {
	return sender.Email{
		MessageID: id + "@annals.local",
		To:        mail.Address{Name: "Ada Lovelace", Address: to},
		Subject:   "Hello " + id,
		Text:      "plain text of " + id,
		HTML:      "<p>HTML of " + id + "</p>",
		Headers:   map[string]string{"X-Annals-Event-ID": id},
	}
}

func TestSender_Send(t *testing.T) {
	t.Parallel()
	mp := notifiertest.NewMailpit(t)
	domain := notifiertest.MailDomain(t)
	proxy := notifiertest.NewProxy(t, testenv.SMTPAddr(t))
	s := newSender(t, proxy.Addr(), sender.Config{UserAgent: "annals-test"})
	ctx := context.Background()
	to := "ada@" + domain
	for i := range 5 {
		if err := s.Send(ctx, email(to, "m"+string(rune('a'+i)))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if got := proxy.Accepted(); got != 1 {
		t.Errorf("%d connections for 5 emails, want 1 (kept and reused)", got)
	}
	mp.WaitCount(t, "to:"+domain, 5, 10*time.Second)
	msgs, err := mp.Search(ctx, "to:"+domain+" subject:\"Hello ma\"")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("search: %v, %d messages", err, len(msgs))
	}
	m, err := mp.Message(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "ma@annals.local" || m.Subject != "Hello ma" || m.From.Address != "noreply@annals.local" ||
		m.From.Name != "Annals Test" || len(m.To) != 1 || m.To[0].Address != to || m.To[0].Name != "Ada Lovelace" {
		t.Errorf("message = %+v", m)
	}
	if strings.TrimSpace(m.Text) != "plain text of ma" || !strings.Contains(m.HTML, "<p>HTML of ma</p>") {
		t.Errorf("bodies: text %q, html %q", m.Text, m.HTML)
	}
	h, err := mp.Headers(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := h["X-Annals-Event-Id"]; len(got) != 1 || got[0] != "ma" {
		t.Errorf("X-Annals-Event-ID = %v (headers %v)", got, h)
	}
	if got := h["User-Agent"]; len(got) != 1 || got[0] != "annals-test" {
		t.Errorf("User-Agent = %v", got)
	}
}

func TestSender_Invalid(t *testing.T) {
	t.Parallel()
	// Nothing listens here: an invalid email must fail before any connection.
	s := newSender(t, "127.0.0.1:1", sender.Config{})
	ok := email("ada@example.com", "x")
	for _, tc := range []struct {
		name string
		edit func(*sender.Email)
	}{
		{"AddressWithLineBreak", func(e *sender.Email) { e.To.Address = "ada@example.com\r\nBcc: eve@example.com" }},
		{"AddressWithName", func(e *sender.Email) { e.To.Address = "Ada <ada@example.com>" }},
		{"EmptyAddress", func(e *sender.Email) { e.To.Address = "" }},
		{"NotAnAddress", func(e *sender.Email) { e.To.Address = "ada" }},
		{"SubjectWithLineBreak", func(e *sender.Email) { e.Subject = "Hi\r\nBcc: eve@example.com" }},
		{"MessageIDWithBrackets", func(e *sender.Email) { e.MessageID = "<x@annals.local>" }},
		{"MessageIDWithoutDomain", func(e *sender.Email) { e.MessageID = "x" }},
		{"HeaderName", func(e *sender.Email) { e.Headers = map[string]string{"Bad Name": "x"} }},
		{"HeaderValue", func(e *sender.Email) { e.Headers = map[string]string{"X-Ok": "a\nBcc: eve@example.com"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			e.Headers = map[string]string{}
			tc.edit(&e)
			err := s.Send(context.Background(), e)
			if !errors.Is(err, sender.ErrInvalid) || !sender.IsPermanent(err) {
				t.Errorf("Send = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("NameWithLineBreakIsFine", func(t *testing.T) {
		e := ok
		e.To.Name = "Eve\r\nBcc: eve@example.com"
		err := s.Send(context.Background(), e)
		var se *sender.Error
		if !errors.As(err, &se) || se.Stage != "connect" || sender.IsPermanent(err) {
			t.Errorf("Send = %v, want only the connection to fail", err)
		}
	})
}

func TestSender_Unreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // connections are refused from now on
	s := newSender(t, addr, sender.Config{})
	err = s.Send(context.Background(), email("ada@example.com", "x"))
	var se *sender.Error
	if !errors.As(err, &se) || se.Stage != "connect" || se.Permanent || sender.IsPermanent(err) {
		t.Errorf("Send = %#v, want a transient connect error", err)
	}
}

func TestSender_TLSRequired(t *testing.T) {
	t.Parallel()
	// Mailpit here offers no STARTTLS: a sender that requires it must not send in clear.
	s := newSender(t, testenv.SMTPAddr(t), sender.Config{TLS: sender.TLSRequired})
	err := s.Send(context.Background(), email("ada@"+notifiertest.MailDomain(t), "tls"))
	if err == nil || sender.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("Send = %v, want a transient error about STARTTLS", err)
	}
}

func TestSender_Replies(t *testing.T) {
	t.Parallel()
	srv := notifiertest.NewSMTPServer(t)
	srv.Reject("gone@example.com")
	srv.Defer("busy@example.com", 1)
	s := newSender(t, srv.Addr(), sender.Config{})
	ctx := context.Background()

	err := s.Send(ctx, email("gone@example.com", "gone"))
	var se *sender.Error
	if !errors.As(err, &se) || !se.Permanent || se.Code != 550 || se.Stage != "RCPT TO" || !sender.IsPermanent(err) {
		t.Errorf("550: Send = %v (%+v), want a permanent RCPT TO error with code 550", err, se)
	}
	err = s.Send(ctx, email("busy@example.com", "busy"))
	if !errors.As(err, &se) || se.Permanent || se.Code != 451 || sender.IsPermanent(err) {
		t.Errorf("451: Send = %v, want a transient error with code 451", err)
	}
	if err := s.Send(ctx, email("busy@example.com", "busy")); err != nil {
		t.Errorf("451 then accepted: Send = %v", err)
	}
	got := srv.Received()
	if len(got) != 1 || got[0].To[0] != "busy@example.com" || !bytes.Contains(got[0].Data, []byte("Message-ID: <busy@annals.local>")) {
		t.Errorf("received %+v", got)
	}
}

// TestSender_TransientReplies: a 4xx reply at any stage of the transaction is transient,
// never permanent, and the same email goes through once the server accepts it again.
func TestSender_TransientReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stage string
		code        int
		deferTo     func(srv *notifiertest.SMTPServer, rcpt string)
	}{
		{"MAIL FROM 421", "MAIL FROM", 421, func(srv *notifiertest.SMTPServer, _ string) { srv.DeferMail(421, 1) }},
		{"MAIL FROM 451", "MAIL FROM", 451, func(srv *notifiertest.SMTPServer, _ string) { srv.DeferMail(451, 1) }},
		{"RCPT TO 451", "RCPT TO", 451, func(srv *notifiertest.SMTPServer, rcpt string) { srv.Defer(rcpt, 1) }},
		{"end of message 451", "end of message", 451, func(srv *notifiertest.SMTPServer, rcpt string) { srv.DeferData(rcpt, 451, 1) }},
		{"end of message 452", "end of message", 452, func(srv *notifiertest.SMTPServer, rcpt string) { srv.DeferData(rcpt, 452, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := notifiertest.NewSMTPServer(t)
			s := newSender(t, srv.Addr(), sender.Config{})
			tc.deferTo(srv, "later@example.com")
			err := s.Send(context.Background(), email("later@example.com", "later"))
			var se *sender.Error
			if !errors.As(err, &se) || se.Permanent || se.Unknown || se.Code != tc.code || se.Stage != tc.stage || sender.IsPermanent(err) {
				t.Fatalf("Send = %v (%+v), want a transient %s error with code %d", err, se, tc.stage, tc.code)
			}
			if err := s.Send(context.Background(), email("later@example.com", "later")); err != nil {
				t.Fatalf("Send after the deferral: %v", err)
			}
			if got := srv.Received(); len(got) != 1 {
				t.Errorf("the server kept %d messages, want 1", len(got))
			}
		})
	}
}

func TestSender_ServerGoneAndBack(t *testing.T) {
	t.Parallel()
	domain := notifiertest.MailDomain(t)
	proxy := notifiertest.NewProxy(t, testenv.SMTPAddr(t))
	s := newSender(t, proxy.Addr(), sender.Config{})
	ctx := context.Background()
	if err := s.Send(ctx, email("a@"+domain, "one")); err != nil {
		t.Fatal(err)
	}
	proxy.Down() // cuts the idle connection too
	err := s.Send(ctx, email("a@"+domain, "two"))
	var se *sender.Error
	if !errors.As(err, &se) || se.Stage != "connect" || sender.IsPermanent(err) {
		t.Errorf("server down: Send = %v, want a transient connect error", err)
	}
	proxy.Up(t)
	if err := s.Send(ctx, email("a@"+domain, "two")); err != nil {
		t.Errorf("server back: Send = %v", err)
	}
	// A connection the server closed while it sat idle is replaced transparently.
	if err := s.Send(ctx, email("a@"+domain, "three")); err != nil {
		t.Fatal(err)
	}
	proxy.Down()
	proxy.Up(t)
	if err := s.Send(ctx, email("a@"+domain, "four")); err != nil {
		t.Errorf("after the idle connection was cut: Send = %v", err)
	}
	notifiertest.NewMailpit(t).WaitCount(t, "to:"+domain, 4, 10*time.Second)
}

func TestSender_OutcomeUnknown(t *testing.T) {
	t.Parallel()
	domain := notifiertest.MailDomain(t)
	proxy := notifiertest.NewProxy(t, testenv.SMTPAddr(t))
	s := newSender(t, proxy.Addr(), sender.Config{})
	proxy.CutAfterDot()
	err := s.Send(context.Background(), email("a@"+domain, "window"))
	var se *sender.Error
	if !errors.As(err, &se) || !se.Unknown || se.Permanent || se.Stage != "end of message" {
		t.Fatalf("Send = %v, want an unknown outcome at the end of the message", err)
	}
	// The server had the message all the same.
	notifiertest.NewMailpit(t).WaitCount(t, "to:"+domain, 1, 10*time.Second)
}

func TestSender_RateLimit(t *testing.T) {
	t.Parallel()
	domain := notifiertest.MailDomain(t)
	s := newSender(t, testenv.SMTPAddr(t), sender.Config{Rate: 20})
	start := time.Now()
	for i := range 11 {
		if err := s.Send(context.Background(), email("r@"+domain, "rate"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	// 20 per second, one at a time: the 11th goes out 0.5 s after the first.
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Errorf("11 emails at 20/s took %s, want at least 0.5s", took)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sender.Config
		want string
	}{
		{"BadAddr", sender.Config{Addr: "mail", From: "a@example.com"}, "not host:port"},
		{"BadFrom", sender.Config{Addr: "mail:25", From: "nobody"}, "not an email address"},
		{"BadTLS", sender.Config{Addr: "mail:25", From: "a@example.com", TLS: "always"}, "TLS mode"},
		{"NegativeRate", sender.Config{Addr: "mail:25", From: "a@example.com", Rate: -1}, "negative rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sender.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %q", err, tc.want)
			}
		})
	}
	s, err := sender.New(sender.Config{Addr: "mail:25", From: "Annals <noreply@mail.example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Domain(); got != "mail.example.com" {
		t.Errorf("Domain = %q", got)
	}
}

func TestSender_StartTLSAndAuth(t *testing.T) {
	t.Parallel()
	srv := notifiertest.NewSMTPServerWith(t, notifiertest.SMTPOptions{TLS: true, Username: "annals", Password: "s3cret"})
	trust := &tls.Config{RootCAs: srv.RootCAs(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	ctx := context.Background()
	for _, mode := range []sender.TLSMode{sender.TLSRequired, sender.TLSOpportunistic} {
		s := newSender(t, srv.Addr(), sender.Config{TLS: mode, TLSConfig: trust, Username: "annals", Password: "s3cret"})
		if err := s.Send(ctx, email("tls@example.com", string(mode))); err != nil {
			t.Fatalf("%s: Send = %v", mode, err)
		}
	}
	got := srv.Received()
	if len(got) != 2 {
		t.Fatalf("received %d messages, want 2", len(got))
	}
	for _, r := range got {
		if !r.TLS || r.User != "annals" {
			t.Errorf("message over TLS %v as %q, want TLS as annals", r.TLS, r.User)
		}
	}
	t.Run("WrongPassword", func(t *testing.T) {
		s := newSender(t, srv.Addr(), sender.Config{TLS: sender.TLSRequired, TLSConfig: trust, Username: "annals", Password: "wrong"})
		err := s.Send(ctx, email("tls@example.com", "wrong"))
		var se *sender.Error
		if !errors.As(err, &se) || se.Stage != "connect" || se.Permanent || !strings.Contains(err.Error(), "535") {
			t.Errorf("Send = %v, want a transient connect error with the 535", err)
		}
	})
	t.Run("UntrustedCertificate", func(t *testing.T) {
		s := newSender(t, srv.Addr(), sender.Config{TLS: sender.TLSRequired, Username: "annals", Password: "s3cret"})
		if err := s.Send(ctx, email("tls@example.com", "untrusted")); err == nil || sender.IsPermanent(err) {
			t.Errorf("Send = %v, want a transient error: the certificate is not trusted", err)
		}
	})
	t.Run("NoPasswordInClear", func(t *testing.T) {
		// Without TLS the server offers PLAIN only after STARTTLS; the library never sends
		// the password in clear.
		s := newSender(t, srv.Addr(), sender.Config{TLS: sender.TLSNone, Username: "annals", Password: "s3cret"})
		if err := s.Send(ctx, email("tls@example.com", "clear")); err == nil || sender.IsPermanent(err) {
			t.Errorf("Send = %v, want a transient error", err)
		}
	})
	if n := len(srv.Received()); n != 2 {
		t.Errorf("received %d messages, want still 2", n)
	}
}

package kafkasec_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// probe runs Probe against addr with a deadline.
func probe(t *testing.T, addr string, s kafkasec.Security) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := kafkasec.Probe(ctx, []string{addr}, s)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Probe took %s: a refusal must be told at once", d)
	}
	return err
}

// wantFault fails unless err is an *Error of the fault.
func wantFault(t *testing.T, err error, want kafkasec.Fault) *kafkasec.Error {
	t.Helper()
	var e *kafkasec.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want an *Error of %s", err, err, want)
	}
	if e.Fault != want {
		t.Fatalf("got fault %s (%v), want %s", e.Fault, err, want)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error quotes the password: %v", err)
	}
	return e
}

func TestProbe(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	serverTLS := ca.ServerTLS(t)
	scram := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.Plain, Username: "projector", Password: "s3cret", CAFile: ca.CertFile}

	t.Run("OK", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			broker *testenv.FakeKafka
			s      kafkasec.Security
		}{
			{"Plaintext", &testenv.FakeKafka{}, kafkasec.Security{}},
			{"SSL", &testenv.FakeKafka{TLS: serverTLS}, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}},
			{"SASLPlaintext", &testenv.FakeKafka{Mechanisms: []string{"PLAIN"}, Password: "s3cret", RequireSASL: true},
				kafkasec.Security{Protocol: kafkasec.SASLPlaintext, Mechanism: kafkasec.Plain, Username: "projector", Password: "s3cret"}},
			{"SASLSSL", &testenv.FakeKafka{Mechanisms: []string{"PLAIN"}, Password: "s3cret", RequireSASL: true, TLS: serverTLS}, scram},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if err := probe(t, tt.broker.Start(t), tt.s); err != nil {
					t.Fatalf("Probe() = %v", err)
				}
			})
		}
	})

	t.Run("ErrAuthentication", func(t *testing.T) {
		addr := (&testenv.FakeKafka{Mechanisms: []string{"PLAIN"}, Password: "another", RequireSASL: true, TLS: serverTLS}).Start(t)
		e := wantFault(t, probe(t, addr, scram), kafkasec.FaultAuthentication)
		if e.Broker != addr || e.Inferred {
			t.Errorf("Broker %q, Inferred %v: want %s, from the broker's answer", e.Broker, e.Inferred, addr)
		}
	})
	t.Run("ErrMechanism", func(t *testing.T) {
		addr := (&testenv.FakeKafka{Mechanisms: []string{"SCRAM-SHA-512"}, RequireSASL: true, TLS: serverTLS}).Start(t)
		wantFault(t, probe(t, addr, scram), kafkasec.FaultMechanism)
	})
	t.Run("ErrSASLNotEnabled", func(t *testing.T) {
		addr := (&testenv.FakeKafka{TLS: serverTLS}).Start(t)
		wantFault(t, probe(t, addr, scram), kafkasec.FaultSASLNotEnabled)
	})
	t.Run("ErrExpectsSASL", func(t *testing.T) {
		addr := (&testenv.FakeKafka{Mechanisms: []string{"PLAIN"}, RequireSASL: true, TLS: serverTLS}).Start(t)
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultExpectsSASL)
		if !e.Inferred {
			t.Error("Inferred is false for a fault read from a closed connection")
		}
	})
	t.Run("ErrUntrusted", func(t *testing.T) {
		addr := (&testenv.FakeKafka{TLS: serverTLS}).Start(t)
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: testenv.NewCA(t, "other-ca").CertFile}), kafkasec.FaultUntrusted)
		var unknown x509.UnknownAuthorityError
		if !errors.As(e, &unknown) {
			t.Errorf("the x509 error is not kept: %v", e)
		}
	})
	t.Run("ErrUntrustedBySystemRoots", func(t *testing.T) {
		addr := (&testenv.FakeKafka{TLS: serverTLS}).Start(t)
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL}), kafkasec.FaultUntrusted)
		if !strings.Contains(e.Error(), "system's roots") {
			t.Errorf("got %v, want it to say the system's roots were used", e)
		}
	})
	t.Run("ErrHostname", func(t *testing.T) {
		misnamed := issue(t, ca, "elsewhere", []string{"kafka.elsewhere.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		addr := (&testenv.FakeKafka{TLS: &tls.Config{Certificates: []tls.Certificate{misnamed.tls}}}).Start(t)
		wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultHostname)
	})
	t.Run("ErrExpired", func(t *testing.T) {
		expired := issue(t, ca, "expired", []string{"127.0.0.1"}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		addr := (&testenv.FakeKafka{TLS: &tls.Config{Certificates: []tls.Certificate{expired.tls}}}).Start(t)
		wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultExpired)
	})
	t.Run("ErrClientCertificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(ca.Certificate())
		mutual := &tls.Config{Certificates: serverTLS.Certificates, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
		addr := (&testenv.FakeKafka{TLS: mutual}).Start(t)
		wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultClientCertificate)

		stranger := issue(t, testenv.NewCA(t, "stranger"), "client", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile, CertFile: stranger.certFile, KeyFile: stranger.keyFile}),
			kafkasec.FaultClientCertificate)
		if !strings.Contains(e.Error(), stranger.certFile) {
			t.Errorf("got %v, want it to name the certificate file", e)
		}

		client := issue(t, ca, "client", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err := probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile, CertFile: client.certFile, KeyFile: client.keyFile}); err != nil {
			t.Errorf("with a certificate the broker trusts: Probe() = %v", err)
		}
	})
	t.Run("ErrNotTLS", func(t *testing.T) {
		// A Kafka listener without TLS reads a ClientHello as a request far too large, and
		// closes the connection.
		addr := listen(t, closeAtOnce)
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultNotTLS)
		if !e.Inferred {
			t.Error("Inferred is false for a fault read from a closed connection")
		}
		// Something that answers, but not in TLS.
		addr = listen(t, func(c net.Conn) {
			_, _ = c.Read(make([]byte, 512))
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		})
		e = wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultNotTLS)
		if e.Inferred {
			t.Error("Inferred is true for a reply that is not TLS")
		}
	})
	t.Run("ErrExpectsTLS", func(t *testing.T) {
		addr := (&testenv.FakeKafka{TLS: serverTLS}).Start(t)
		wantFault(t, probe(t, addr, kafkasec.Security{}), kafkasec.FaultExpectsTLS)
		wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SASLPlaintext, Mechanism: kafkasec.Plain, Username: "u", Password: "s3cret"}),
			kafkasec.FaultExpectsTLS)
		// A listener that closes a plaintext connection without a word.
		addr = listen(t, closeAtOnce)
		wantFault(t, probe(t, addr, kafkasec.Security{}), kafkasec.FaultExpectsTLS)
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		err = probe(t, addr, scram)
		var e *kafkasec.Error
		if err == nil || errors.As(err, &e) {
			t.Fatalf("Probe() = %v, want an error that is no *Error: an outage is not a setting", err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("got %v, want it to name %s", err, addr)
		}
	})
	t.Run("ErrAdvertisedBroker", func(t *testing.T) {
		// The bootstrap broker is fine, but it advertises one whose certificate names
		// another host: the clients would fail there.
		misnamed := issue(t, ca, "elsewhere", []string{"kafka.elsewhere.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		advertised := (&testenv.FakeKafka{TLS: &tls.Config{Certificates: []tls.Certificate{misnamed.tls}}}).Start(t)
		addr := (&testenv.FakeKafka{Advertise: advertised, TLS: serverTLS}).Start(t)
		e := wantFault(t, probe(t, addr, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}), kafkasec.FaultHostname)
		if e.Broker != advertised {
			t.Errorf("Broker = %q, want the advertised %s", e.Broker, advertised)
		}
	})
	t.Run("ErrConfig", func(t *testing.T) {
		err := kafkasec.Probe(context.Background(), []string{"127.0.0.1:9"}, kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile + ".missing"})
		var ce *kafkasec.ConfigError
		if !errors.As(err, &ce) || ce.Field != "CAFile" {
			t.Fatalf("Probe() = %v, want a *ConfigError of CAFile", err)
		}
	})
}

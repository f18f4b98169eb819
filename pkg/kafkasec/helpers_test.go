package kafkasec_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
)

// authority is a certificate authority made for a test.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var serial struct {
	mu sync.Mutex
	n  int64
}

func nextSerial() *big.Int {
	serial.mu.Lock()
	defer serial.mu.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newAuthority(tb testing.TB, name string) *authority {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	a := &authority{cert: cert, key: key, file: filepath.Join(tb.TempDir(), name+".crt")}
	writePEM(tb, a.file, "CERTIFICATE", der)
	return a
}

// leaf is a certificate the authority signed, with its key, in files and for a tls.Config.
type leaf struct {
	certFile, keyFile string
	tls               tls.Certificate
}

// issue signs a certificate for hosts (DNS names or IP addresses), valid from notBefore to
// notAfter, for servers and clients.
func (a *authority) issue(tb testing.TB, cn string, hosts []string, notBefore, notAfter time.Time) leaf {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	l := leaf{certFile: filepath.Join(dir, cn+".crt"), keyFile: filepath.Join(dir, cn+".key")}
	writePEM(tb, l.certFile, "CERTIFICATE", der)
	writePEM(tb, l.keyFile, "PRIVATE KEY", keyDER)
	l.tls, err = tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// server issues a certificate for the loopback address, valid now.
func (a *authority) server(tb testing.TB) leaf {
	tb.Helper()
	return a.issue(tb, "broker", []string{"127.0.0.1", "localhost"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// listen serves each connection accepted on a loopback port with serve until the test ends,
// and returns the port's address.
func listen(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			})
		}
	})
	return ln.Addr().String()
}

// overTLS serves each connection with serve after a TLS handshake with cfg.
func overTLS(cfg *tls.Config, serve func(net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		t := tls.Server(c, cfg)
		if err := t.Handshake(); err != nil {
			return
		}
		serve(t)
	}
}

// closeAtOnce reads what the client sends first, then closes the connection without a word,
// as a Kafka listener does with a request it cannot parse (a TLS ClientHello, say).
func closeAtOnce(c net.Conn) {
	_, _ = c.Read(make([]byte, 512))
}

// fakeBroker is a Kafka broker that speaks just enough of the protocol for a client to
// connect, authenticate and ask for metadata.
type fakeBroker struct {
	// mechanisms are the SASL mechanisms of the listener; nil means a listener without SASL,
	// which answers a handshake with IllegalSaslState, as Kafka does.
	mechanisms []string
	// password is the one the broker accepts (PLAIN only); authentication with another fails.
	password string
	// requireSASL makes the listener close a connection that asks for metadata before it
	// authenticated, as a SASL listener of Kafka does.
	requireSASL bool
	// advertise is the broker its metadata advertises; itself when empty.
	advertise string
	addr      string // where it listens
}

func (b *fakeBroker) serve(c net.Conn) {
	authenticated := false
	for {
		version, correlation, _, msg, err := protocol.ReadRequest(c)
		if err != nil {
			return
		}
		var res protocol.Message
		switch req := msg.(type) {
		case *apiversions.Request:
			res = &apiversions.Response{ApiKeys: []apiversions.ApiKeyResponse{
				{ApiKey: int16(protocol.Metadata), MinVersion: 1, MaxVersion: 1},
				{ApiKey: int16(protocol.ApiVersions), MinVersion: 0, MaxVersion: 0},
				{ApiKey: int16(protocol.SaslHandshake), MinVersion: 0, MaxVersion: 1},
				{ApiKey: int16(protocol.SaslAuthenticate), MinVersion: 0, MaxVersion: 1},
			}}
		case *saslhandshake.Request:
			r := &saslhandshake.Response{Mechanisms: b.mechanisms}
			switch {
			case b.mechanisms == nil:
				r.ErrorCode = 34 // IllegalSaslState
			case !contains(b.mechanisms, req.Mechanism):
				r.ErrorCode = 33 // UnsupportedSaslMechanism
			}
			res = r
		case *saslauthenticate.Request:
			// PLAIN: "\x00user\x00password".
			r := &saslauthenticate.Response{}
			if parts := splitNUL(req.AuthBytes); len(parts) != 3 || parts[2] != b.password {
				r.ErrorCode, r.ErrorMessage = 58, "Authentication failed: Invalid username or password"
			} else {
				authenticated = true
			}
			res = r
		case *metadata.Request:
			if b.requireSASL && !authenticated {
				return // Kafka closes the connection of a request before authentication
			}
			advertised := b.advertise
			if advertised == "" {
				advertised = b.addr
			}
			host, port, _ := net.SplitHostPort(advertised)
			p, _ := strconv.Atoi(port)
			res = &metadata.Response{Brokers: []metadata.ResponseBroker{{NodeID: 1, Host: host, Port: int32(p)}}, ControllerID: 1}
		default:
			return
		}
		if err := protocol.WriteResponse(c, version, correlation, res); err != nil {
			return
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

// start serves the broker on a loopback port, through wrap (overTLS, say) when not nil.
func (b *fakeBroker) start(tb testing.TB, wrap func(func(net.Conn)) func(net.Conn)) string {
	tb.Helper()
	ready := make(chan struct{})
	serve := func(c net.Conn) {
		<-ready
		b.serve(c)
	}
	if wrap != nil {
		serve = wrap(serve)
	}
	b.addr = listen(tb, serve)
	close(ready)
	return b.addr
}

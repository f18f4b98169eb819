package kafkasec_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// leaf is a certificate a test CA signed, with its key, in files and for a tls.Config.
type leaf struct {
	certFile, keyFile string
	tls               tls.Certificate
}

// issue signs a certificate for hosts (DNS names or IP addresses), valid from notBefore to
// notAfter, for servers and clients.
func issue(tb testing.TB, ca *testenv.CA, cn string, hosts []string, notBefore, notAfter time.Time) leaf {
	tb.Helper()
	var l leaf
	l.tls, l.certFile, l.keyFile = ca.IssueValid(tb, cn, notBefore, notAfter, hosts...)
	return l
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

// closeAtOnce reads what the client sends first, then closes the connection without a word,
// as a Kafka listener does with a request it cannot parse (a TLS ClientHello, say).
func closeAtOnce(c net.Conn) {
	_, _ = c.Read(make([]byte, 512))
}

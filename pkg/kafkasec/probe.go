package kafkasec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// Probe connects to the brokers with s's security, one after the other, the way the clients
// do (TLS handshake, SASL authentication), and asks the first that accepts for the cluster's
// metadata; then it connects to the brokers that metadata advertises, which the clients dial
// next. It returns nil when that works, an *Error as soon as a broker refuses the client for
// its security (see Fault), and otherwise the errors of every broker, joined: none could be
// reached, which is an outage rather than a setting. A problem with s itself is a
// *ConfigError. Each connection is bounded by ctx and DialTimeout.
func Probe(ctx context.Context, brokers []string, s Security) error {
	base, err := s.Dialer()
	if err != nil {
		return err
	}
	if len(brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	var errs []error
	for _, addr := range brokers {
		advertised, err := probeOne(ctx, addr, s, base, true)
		if err == nil {
			for _, b := range advertised {
				if b == addr {
					continue
				}
				var e *Error
				if _, err := probeOne(ctx, b, s, base, false); errors.As(err, &e) {
					return err
				}
			}
			return nil
		}
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// probeOne connects to one broker and asks it for its API versions, and for the cluster's
// brokers when metadata is set.
func probeOne(ctx context.Context, addr string, s Security, base *kafka.Dialer, metadata bool) ([]string, error) {
	d := *base
	var mu sync.Mutex
	var raw *watchedConn
	d.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		raw = &watchedConn{Conn: c}
		return raw, nil
	}
	var advertised []string
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		}
		if _, err = conn.ApiVersions(); err == nil && metadata {
			brokers, berr := conn.Brokers()
			err = berr
			for _, b := range brokers {
				advertised = append(advertised, net.JoinHostPort(b.Host, strconv.Itoa(b.Port)))
			}
		}
		_ = conn.Close()
	}
	if err == nil {
		return advertised, nil
	}
	var e *Error
	if errors.As(Classify(err, s), &e) {
		if e.Broker == "" {
			e.Broker = addr
		}
		return nil, e
	}
	mu.Lock()
	w := raw
	mu.Unlock()
	if w != nil {
		if f, ok := w.inferFault(s, err); ok {
			return nil, &Error{Fault: f, Broker: addr, Security: s, Inferred: true, Err: err}
		}
	}
	return nil, fmt.Errorf("%s: %w", addr, err)
}

// watchedConn is a connection that remembers how much the broker sent, and the first bytes.
type watchedConn struct {
	net.Conn
	mu    sync.Mutex
	read  int
	first []byte
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.first) < 8 {
		c.first = append(c.first, b[:min(n, 8-len(c.first))]...)
	}
	c.read += n
	return n, err
}

// inferFault reads a fault from how a connection that was established ended: a broker that
// answers a client without TLS with a TLS record, or closes the connection before a byte,
// expects TLS; one that closes the connection of a TLS client before a byte does not speak
// TLS; one that closes after an answer, the client not authenticating, expects SASL.
func (c *watchedConn) inferFault(s Security, err error) (Fault, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := s.protocol()
	if !p.TLS() && looksLikeTLS(c.first) {
		return FaultExpectsTLS, true
	}
	if !closedByPeer(err) {
		return "", false
	}
	switch {
	case c.read == 0 && p.TLS():
		return FaultNotTLS, true
	case c.read == 0:
		return FaultExpectsTLS, true
	case !p.SASL():
		return FaultExpectsSASL, true
	}
	return "", false
}

// looksLikeTLS reports whether b starts like a TLS record (an alert or a handshake, version
// 3.x): as a Kafka response, its size would be hundreds of megabytes.
func looksLikeTLS(b []byte) bool {
	return len(b) >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03
}

func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

package notifiertest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to an SMTP server. Down makes the server unreachable (new
// connections are refused, open ones are cut) and Up makes it reachable again on the same
// address, as a mail server that goes away and comes back.
//
// Down never cuts a connection inside the SMTP window (after the client sent the final "." of
// a message and before the server's reply reached it), so that the outage itself duplicates
// nothing; CutAfterDot asks for exactly that cut, once, to show what a crash in the window
// does.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[*proxyConn]struct{}
	done  sync.WaitGroup

	cutAfterDot atomic.Bool
	cuts        atomic.Int64
	accepted    atomic.Int64
}

type proxyConn struct {
	client, server net.Conn
	mu             sync.Mutex
	cond           *sync.Cond
	inWindow       bool // the client sent the end of a message; the reply has not reached it
	closed         bool
}

// NewProxy starts a proxy to target on a free loopback port; it stops when the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[*proxyConn]struct{}{}}
	p.serve(ln)
	tb.Cleanup(p.Down)
	return p
}

// Addr is the proxy's address, to give the client as its server.
func (p *Proxy) Addr() string { return p.addr }

// Accepted counts the connections the proxy forwarded.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cuts counts the connections CutAfterDot cut.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// CutAfterDot makes the proxy cut the next connection that carries the end of a message right
// after forwarding it to the server, before the server's reply reaches the client: the server
// has the message, the client does not know.
func (p *Proxy) CutAfterDot() { p.cutAfterDot.Store(true) }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.done.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			pc := &proxyConn{client: c, server: s}
			pc.cond = sync.NewCond(&pc.mu)
			p.mu.Lock()
			if p.ln != ln { // went down meanwhile
				p.mu.Unlock()
				_ = c.Close()
				_ = s.Close()
				return
			}
			p.conns[pc] = struct{}{}
			p.mu.Unlock()
			p.done.Go(func() { p.toServer(pc) })
			p.done.Go(func() { p.toClient(pc) })
		}
	})
}

// Down closes the listener, so that connections are refused, and cuts every open connection
// outside the SMTP window. It returns once all of them are closed.
func (p *Proxy) Down() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		deadline := time.Now().Add(10 * time.Second)
		for c.inWindow && !c.closed && time.Now().Before(deadline) {
			c.cond.Wait()
		}
		c.closeLocked()
		c.mu.Unlock()
	}
	p.done.Wait()
	p.mu.Lock()
	clear(p.conns)
	p.mu.Unlock()
}

// Up listens again on the proxy's address.
func (p *Proxy) Up(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (c *proxyConn) closeLocked() {
	if !c.closed {
		c.closed = true
		_ = c.client.Close()
		_ = c.server.Close()
		c.cond.Broadcast()
	}
}

var endOfData = []byte("\r\n.\r\n")

// toServer forwards the client's bytes, noting when they end a message.
func (p *Proxy) toServer(c *proxyConn) {
	buf := make([]byte, 32<<10)
	var tail []byte // the last bytes forwarded, to find an end of data split across reads
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			window := append(tail, buf[:n]...)
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return
			}
			if bytes.Contains(window, endOfData) {
				c.inWindow = true
			}
			_, werr := c.server.Write(buf[:n])
			c.mu.Unlock()
			if werr != nil {
				p.close(c)
				return
			}
			tail = append(tail[:0], window[max(0, len(window)-len(endOfData)+1):]...)
		}
		if err != nil {
			p.close(c)
			return
		}
	}
}

// toClient forwards the server's bytes; a reply after the end of a message closes the window.
func (p *Proxy) toClient(c *proxyConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return
			}
			if c.inWindow && p.cutAfterDot.CompareAndSwap(true, false) {
				p.cuts.Add(1)
				c.closeLocked() // the server accepted the message; the client never hears so
				c.mu.Unlock()
				return
			}
			_, werr := c.client.Write(buf[:n])
			if c.inWindow {
				c.inWindow = false
				c.cond.Broadcast()
			}
			c.mu.Unlock()
			if werr != nil {
				p.close(c)
				return
			}
		}
		if err != nil {
			p.close(c)
			return
		}
	}
}

func (p *Proxy) close(c *proxyConn) {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

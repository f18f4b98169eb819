package testenv

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	"github.com/segmentio/kafka-go/protocol/findcoordinator"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
)

// FakeKafka is a Kafka broker that speaks just enough of the protocol for the clients to
// connect, authenticate and be answered, or refused, as a secured broker answers them: the
// tests of what a client does when the brokers refuse its security or its permissions, which
// the shared broker (no TLS, no SASL, no ACLs) cannot show. It knows ApiVersions, SASL
// (PLAIN), Metadata, Produce and FindCoordinator; any other request closes the connection.
type FakeKafka struct {
	// TLS, when set, makes the listener a TLS one.
	TLS *tls.Config
	// Mechanisms are the SASL mechanisms of the listener; nil means a listener without SASL,
	// which answers a handshake with IllegalSaslState, as Kafka does. Password is the one it
	// accepts (PLAIN); RequireSASL makes it close a connection that asks for anything but
	// ApiVersions before it authenticated, as a SASL listener of Kafka does.
	Mechanisms  []string
	Password    string
	RequireSASL bool
	// Advertise is the broker its metadata advertises; itself when empty.
	Advertise string
	// Topics are the topics it knows, with their partition counts; itself the leader of each.
	Topics map[string]int
	// Deny makes its answers to an API carry an error code: kafka.TopicAuthorizationFailed
	// for the topics of Metadata or the partitions of Produce, kafka.GroupAuthorizationFailed
	// for FindCoordinator, say.
	Deny map[protocol.ApiKey]kafka.Error

	addr string
	mu   sync.Mutex
	seen map[protocol.ApiKey]int
}

// Start serves the broker on a loopback port until the test ends, and returns its address.
func (f *FakeKafka) Start(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.seen = map[protocol.ApiKey]int{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	tb.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range open { // clients keep idle connections (kafka.DefaultTransport's)
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				if f.TLS != nil {
					t := tls.Server(c, f.TLS)
					if t.Handshake() != nil {
						return
					}
					c = t
				}
				f.serve(c)
			})
		}
	})
	return f.addr
}

// Requests is how many requests of an API the broker answered (or refused).
func (f *FakeKafka) Requests(api protocol.ApiKey) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[api]
}

func (f *FakeKafka) deny(api protocol.ApiKey) int16 {
	return int16(f.Deny[api])
}

// maxRequest is Kafka's socket.request.max.bytes: a broker closes the connection of a
// larger request (a TLS ClientHello read as a request's size is one).
const maxRequest = 100 << 20

func (f *FakeKafka) serve(c net.Conn) {
	authenticated := false
	var offset int64
	r := bufio.NewReader(c)
	for {
		size, err := r.Peek(4)
		if err != nil || binary.BigEndian.Uint32(size) > maxRequest {
			return
		}
		version, correlation, _, msg, err := protocol.ReadRequest(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.seen[msg.ApiKey()]++
		f.mu.Unlock()
		if _, ok := msg.(*apiversions.Request); !ok && f.RequireSASL && !authenticated {
			switch msg.(type) {
			case *saslhandshake.Request, *saslauthenticate.Request:
			default:
				return // Kafka closes the connection of a request before authentication
			}
		}
		var res protocol.Message
		switch req := msg.(type) {
		case *apiversions.Request:
			res = &apiversions.Response{ApiKeys: []apiversions.ApiKeyResponse{
				{ApiKey: int16(protocol.Produce), MinVersion: 3, MaxVersion: 3},
				{ApiKey: int16(protocol.Metadata), MinVersion: 1, MaxVersion: 1},
				{ApiKey: int16(protocol.FindCoordinator), MinVersion: 0, MaxVersion: 0},
				{ApiKey: int16(protocol.SaslHandshake), MinVersion: 0, MaxVersion: 1},
				{ApiKey: int16(protocol.ApiVersions), MinVersion: 0, MaxVersion: 0},
				{ApiKey: int16(protocol.SaslAuthenticate), MinVersion: 0, MaxVersion: 1},
			}}
		case *saslhandshake.Request:
			r := &saslhandshake.Response{Mechanisms: f.Mechanisms}
			switch {
			case f.Mechanisms == nil:
				r.ErrorCode = int16(kafka.IllegalSASLState)
			case !slices.Contains(f.Mechanisms, req.Mechanism):
				r.ErrorCode = int16(kafka.UnsupportedSASLMechanism)
			}
			res = r
		case *saslauthenticate.Request:
			r := &saslauthenticate.Response{} // PLAIN: "\x00user\x00password"
			if parts := splitNUL(req.AuthBytes); len(parts) != 3 || parts[2] != f.Password {
				r.ErrorCode, r.ErrorMessage = int16(kafka.SASLAuthenticationFailed), "Authentication failed: Invalid username or password"
			} else {
				authenticated = true
			}
			res = r
		case *metadata.Request:
			res = f.metadata(req)
		case *produce.Request:
			r := &produce.Response{}
			for _, t := range req.Topics {
				rt := produce.ResponseTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					rp := produce.ResponsePartition{Partition: p.Partition, ErrorCode: f.deny(protocol.Produce), BaseOffset: offset}
					offset++
					rt.Partitions = append(rt.Partitions, rp)
				}
				r.Topics = append(r.Topics, rt)
			}
			res = r
		case *findcoordinator.Request:
			host, port := f.advertised()
			res = &findcoordinator.Response{ErrorCode: f.deny(protocol.FindCoordinator), NodeID: 1, Host: host, Port: port}
		default:
			return
		}
		if err := protocol.WriteResponse(c, version, correlation, res); err != nil {
			return
		}
	}
}

func (f *FakeKafka) advertised() (string, int32) {
	addr := f.Advertise
	if addr == "" {
		addr = f.addr
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

func (f *FakeKafka) metadata(req *metadata.Request) *metadata.Response {
	host, port := f.advertised()
	res := &metadata.Response{Brokers: []metadata.ResponseBroker{{NodeID: 1, Host: host, Port: port}}, ControllerID: 1}
	names := req.TopicNames
	if names == nil {
		for t := range f.Topics {
			names = append(names, t)
		}
		slices.Sort(names)
	}
	for _, name := range names {
		n, ok := f.Topics[name]
		t := metadata.ResponseTopic{Name: name, ErrorCode: f.deny(protocol.Metadata)}
		switch {
		case t.ErrorCode != 0:
		case !ok:
			t.ErrorCode = int16(kafka.UnknownTopicOrPartition)
		default:
			for p := range n {
				t.Partitions = append(t.Partitions, metadata.ResponsePartition{PartitionIndex: int32(p), LeaderID: 1, ReplicaNodes: []int32{1}, IsrNodes: []int32{1}})
			}
		}
		res.Topics = append(res.Topics, t)
	}
	return res
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

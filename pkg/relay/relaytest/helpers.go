package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// The categories the suite's streams belong to (the part of a stream id before its first
// "-"), each with a topic of three partitions.
var categories = []string{"order", "user"}

// env is one subtest's store and topics.
type env struct {
	Subject
	brokers []string
	prefix  string
	// lockKey is the relays' lock key; observer sessions take lockKey+1, which no relay
	// contends for.
	lockKey int64
	small   bool // Harness.Small
}

// short reports whether the long subtests run with fewer events: under -short, or when the
// harness asks for it (Harness.Small).
func (e *env) short() bool { return e.small || testing.Short() }

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	e := &env{Subject: h.New(t), brokers: h.Brokers, prefix: "relaytest-" + hex.EncodeToString(b[:6]),
		lockKey: int64(binary.BigEndian.Uint64(b[:]) >> 2), small: h.Small}
	var topics []relay.Topic
	for _, c := range categories {
		topics = append(topics, relay.Topic{Name: kafkawire.Topic(e.prefix, c), Partitions: 3, ReplicationFactor: 1})
	}
	if err := relay.EnsureTopics(t.Context(), e.brokers, topics, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 30 * time.Second}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: e.topics()})
	})
	return e
}

// topics are the names of the env's topics.
func (e *env) topics() []string {
	var out []string
	for _, c := range categories {
		out = append(out, kafkawire.Topic(e.prefix, c))
	}
	return out
}

// jsonEncoder is a stand-in for the Avro encoder: the envelope as JSON, fingerprint 42.
type jsonEncoder struct{}

func (jsonEncoder) Encode(ev events.Envelope) ([]byte, string, uint64, error) {
	b, err := json.Marshal(ev)
	return b, "application/json", 42, err
}

// poison is the event type gatedEncoder refuses until its schema is deployed.
const poison = "Poison"

// gatedEncoder is jsonEncoder, except that it refuses events of type Poison until deployed.
type gatedEncoder struct{ deployed atomic.Bool }

func (g *gatedEncoder) Encode(ev events.Envelope) ([]byte, string, uint64, error) {
	if ev.Type == poison && !g.deployed.Load() {
		return nil, "", 0, errors.New("no schema for event type Poison")
	}
	return jsonEncoder{}.Encode(ev)
}

// running is a relay that runs until stopped or the test ends.
type running struct {
	*relay.Relay
	cancel context.CancelFunc
	done   chan error
}

// start runs a relay of the env's outbox with enc (nil: jsonEncoder) until the test ends.
func (e *env) start(t *testing.T, enc relay.Encoder, cfg relay.Config) *running {
	t.Helper()
	return e.startOn(t, e.Outbox, enc, cfg)
}

// startOn runs a relay of o, in the place of the env's outbox, until the test ends.
func (e *env) startOn(t *testing.T, o relay.Outbox, enc relay.Encoder, cfg relay.Config) *running {
	t.Helper()
	return e.startWith(t, context.Background(), o, enc, cfg)
}

// startWith runs a relay of o with enc until ctx ends, it is stopped, or the test ends.
func (e *env) startWith(t *testing.T, parent context.Context, o relay.Outbox, enc relay.Encoder, cfg relay.Config) *running {
	t.Helper()
	if enc == nil {
		enc = jsonEncoder{}
	}
	cfg.Brokers, cfg.TopicPrefix, cfg.LockKey = e.brokers, e.prefix, e.lockKey
	r, err := relay.New(o, enc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(parent)
	run := &running{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels the relay and waits until it returned; it may be called again.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err, ok := <-r.done; ok {
		close(r.done)
		if err != nil {
			t.Errorf("relay: %v", err)
		}
		r.Close()
	}
}

// events returns n events of type typ, numbered in their data.
func newEvents(n int, typ string) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{Type: typ, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	return evs
}

// append appends n events of type typ to stream.
func (e *env) append(t *testing.T, stream string, n int, typ string) {
	t.Helper()
	e.appendEvents(t, stream, newEvents(n, typ)...)
}

func (e *env) appendEvents(t *testing.T, stream string, evs ...events.Event) {
	t.Helper()
	if _, err := e.Store.Append(context.Background(), stream, events.Any(), evs, events.AppendOptions{CorrelationID: "corr", CausationID: "cause"}); err != nil {
		t.Fatalf("append %d events to %s: %v", len(evs), stream, err)
	}
}

// published reads every record of the env's topics up to their current ends, each
// partition's in order (so each stream's in the order published).
func (e *env) published(t *testing.T) []Record {
	t.Helper()
	return Published(t, e.brokers, e.topics()...)
}

// awaitRecords waits until at least n records are published, and returns them.
func (e *env) awaitRecords(t *testing.T, n int) []Record {
	t.Helper()
	var recs []Record
	waitFor(t, fmt.Sprintf("%d records", n), func() bool {
		recs = e.published(t)
		return len(recs) >= n
	})
	return recs
}

// checkOrderAll is CheckOrder, and streams not in want must have no events.
func checkOrderAll(t *testing.T, recs []Record, want map[string]int64) int {
	t.Helper()
	next, dups := checkOrder(t, recs, want)
	for s, n := range next {
		if _, ok := want[s]; !ok {
			t.Errorf("%s: %d events arrived, want none", s, n)
		}
	}
	return dups
}

// total is the number of events of want.
func total(want map[string]int64) int {
	n := 0
	for _, v := range want {
		n += int(v)
	}
	return n
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/events/redis"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

// encoder is a stand-in for the Avro encoder: the envelope as JSON. Events of type "Poison"
// cannot be encoded until Cure.
type encoder struct{ cured atomic.Bool }

func (c *encoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	if e.Type == "Poison" && !c.cured.Load() {
		return nil, "", 0, errors.New("no schema for event type Poison")
	}
	b, err := json.Marshal(e)
	return b, "application/json", 42, err
}

// relayEnv is a store under a prefix of its own and topics of its own.
type relayEnv struct {
	store   *redis.Store
	prefix  string // the store's
	brokers []string
	topics  string // the topics' prefix
	enc     *encoder
}

func newRelayEnv(t *testing.T, opts redis.Options) *relayEnv {
	t.Helper()
	s, prefix := newNamedStore(t, opts)
	e := &relayEnv{store: s, prefix: prefix, brokers: testenv.KafkaBrokers(t), topics: "test-" + testenv.UniqueName(t), enc: &encoder{}}
	names := e.topicNames()
	topics := make([]relay.Topic, len(names))
	for i, n := range names {
		topics[i] = relay.Topic{Name: n, Partitions: 3, ReplicationFactor: 1}
	}
	if err := relay.EnsureTopics(context.Background(), e.brokers, topics, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	return e
}

// topicNames are the names of the env's topics.
func (e *relayEnv) topicNames() []string {
	return []string{kafkawire.Topic(e.topics, "user"), kafkawire.Topic(e.topics, "order")}
}

// start runs a relay on the outbox until stop is called or the test ends; stop waits for it.
func (e *relayEnv) start(t *testing.T, o *redis.Outbox) (stop func()) {
	t.Helper()
	_, stop = relaytest.Start(t, o, e.enc, relay.Config{
		Brokers: e.brokers, TopicPrefix: e.topics, LockKey: 7,
		PollInterval: 20 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
	})
	return stop
}

// ownClient is a client of the test's own, for a relay whose connection the test breaks.
func ownClient(t *testing.T) *goredis.Client {
	t.Helper()
	return client(t)
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// published reads every record of the env's topics up to their current ends, and returns
// each stream's versions in the order they arrived.
func (e *relayEnv) published(t *testing.T) map[string][]int64 {
	t.Helper()
	return relaytest.ByStream(relaytest.Published(t, e.brokers, e.topicNames()...))
}

// checkOrder: per stream, the first time each version arrives, versions go 0, 1, 2, ... up to
// want's count with nothing missing or out of order. It returns the number of duplicates.
func checkOrder(t *testing.T, got map[string][]int64, want map[string]int64) int {
	t.Helper()
	dups := 0
	for s, versions := range got {
		var next int64
		for _, v := range versions {
			switch {
			case v == next:
				next++
			case v < next:
				dups++
			default:
				t.Errorf("%s: version %d arrived before %d", s, v, next)
				next = v + 1
			}
		}
		if want[s] == 0 {
			t.Errorf("%s: %d records of a stream never appended", s, len(versions))
		}
	}
	for s, n := range want {
		var first int64
		seen := map[int64]bool{}
		for _, v := range got[s] {
			seen[v] = true
		}
		for first = 0; seen[first]; first++ {
		}
		if first != n {
			t.Errorf("%s: versions 0..%d arrived, want 0..%d", s, first-1, n-1)
		}
	}
	return dups
}

// appenders runs writers that append to streams until each made rounds appends, and returns
// how many events each stream got.
func appenders(t *testing.T, s *redis.Store, writers, rounds int) map[string]int64 {
	t.Helper()
	return relaytest.AppendConcurrently(t, writers, rounds, func(w, i int) (events.Store, string, []events.Event) {
		stream := fmt.Sprintf("order-%d", (w+i)%6)
		if i%3 == 0 {
			stream = fmt.Sprintf("user-%d", (w+i)%4)
		}
		evs := make([]events.Event, 1+(w+i)%3)
		for j := range evs {
			evs[j] = events.Event{Type: "Something", Data: fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)}
		}
		return s, stream, evs
	})
}

func (e *relayEnv) waitEmpty(t *testing.T) {
	t.Helper()
	waitFor(t, "the outbox empties", func() (bool, error) { return e.store.Outbox().Empty(context.Background()) })
}

// TestRelay_ConcurrentAppenders: a relay on the store's outbox publishes every event of many
// concurrent appenders, each stream's in order; with two relays on one outbox, one publishes
// and there are no duplicates in a steady state.
func TestRelay_ConcurrentAppenders(t *testing.T) {
	e := newRelayEnv(t, redis.Options{})
	e.start(t, e.store.Outbox())
	e.start(t, e.store.Outbox())
	want := appenders(t, e.store, 8, 40)
	e.waitEmpty(t)
	if dups := checkOrder(t, e.published(t), want); dups != 0 {
		t.Errorf("%d duplicates with two relays in a steady state", dups)
	}
	st, err := e.store.Stats(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range want {
		total += n
	}
	if st.TotalEvents != total {
		t.Errorf("stats count %d events after publishing, want %d", st.TotalEvents, total)
	}
}

// TestRelay_LeaderCutOff: the publishing relay is cut from Redis in the middle of a stream of
// appends (its connection closed, so it neither settles nor releases its lease), and more
// appends follow; another relay takes over once the lease runs out, and every event is
// published, in order.
func TestRelay_LeaderCutOff(t *testing.T) {
	opts := redis.Options{LeaseTTL: 600 * time.Millisecond}
	e := newRelayEnv(t, opts)
	opts.Prefix = e.prefix
	cut := ownClient(t)
	e.start(t, redis.New(cut, opts).Outbox())

	var wg sync.WaitGroup
	defer wg.Wait()
	var before, after map[string]int64
	wg.Go(func() { before = appenders(t, e.store, 4, 60) })
	waitFor(t, "the first relay publishes", func() (bool, error) {
		return len(e.published(t)) > 0, nil
	})
	if err := cut.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	after = appenders(t, e.store, 4, 30)
	if empty, err := e.store.Outbox().Empty(context.Background()); err != nil || empty {
		t.Fatalf("outbox empty = %v, %v after the cut; want appends waiting", empty, err)
	}
	e.start(t, redis.New(ownClient(t), opts).Outbox())
	e.waitEmpty(t)
	for s, n := range after {
		before[s] += n
	}
	dups := checkOrder(t, e.published(t), before)
	t.Logf("%d duplicates after the cut", dups)
}

// TestRelay_Holds: an append the encoder refuses holds only its stream; Skip releases the
// stream past it, and Retry publishes it once the encoder takes it.
func TestRelay_Holds(t *testing.T) {
	ctx := context.Background()
	e := newRelayEnv(t, redis.Options{})
	o := e.store.Outbox()
	e.start(t, o)
	appendN(t, e.store, "order-1", 1, "Something")
	appendN(t, e.store, "order-1", 1, "Poison") // held at version 1
	appendN(t, e.store, "order-1", 2, "Something")
	appendN(t, e.store, "user-1", 1, "Poison") // held at version 0
	appendN(t, e.store, "user-1", 1, "Something")
	appendN(t, e.store, "order-2", 3, "Something")

	var holds []outbox.Hold
	waitFor(t, "both streams held", func() (bool, error) {
		var err error
		holds, err = o.Holds(ctx)
		return len(holds) == 2, err
	})
	var got map[string][]int64
	waitFor(t, "the other stream and order-1's first append published", func() (bool, error) {
		got = e.published(t)
		return len(got["order-2"]) == 3 && len(got["order-1"]) > 0, nil
	})
	if fmt.Sprint(got["order-1"]) != "[0]" || len(got["user-1"]) != 0 {
		t.Fatalf("held streams published %v and %v, want [0] and nothing", got["order-1"], got["user-1"])
	}
	byStream := map[string]outbox.Hold{}
	for _, h := range holds {
		byStream[h.StreamID] = h
	}
	if h := byStream["order-1"]; h.FirstVersion != 1 || h.Waiting != 2 || h.Reason != "no schema for event type Poison" {
		t.Errorf("hold of order-1 = %+v", h)
	}
	if n, err := o.Waiting(ctx); err != nil || n != 4 {
		t.Errorf("waiting = %d, %v; want 4", n, err)
	}

	if _, err := o.Skip(ctx, "order-1", 1, "test", "a poison event"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "order-1 published past its skipped append", func() (bool, error) {
		return fmt.Sprint(e.published(t)["order-1"]) == "[0 2 3]", nil
	})

	if _, err := o.Retry(ctx, "user-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "user-1 held again", func() (bool, error) {
		holds, err := o.Holds(ctx)
		return len(holds) == 1 && holds[0].StreamID == "user-1", err
	})
	e.enc.cured.Store(true)
	if _, err := o.Retry(ctx, "user-1"); err != nil {
		t.Fatal(err)
	}
	e.waitEmpty(t)
	if got := e.published(t)["user-1"]; fmt.Sprint(got) != "[0 1]" {
		t.Errorf("user-1 published %v, want [0 1]", got)
	}
}

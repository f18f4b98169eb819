package mongodb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/mongodb"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

var _ relay.Outbox = (*mongodb.Outbox)(nil)

// jsonEncoder is a stand-in for the Avro encoder: the envelope as JSON. Events of type
// "Poison" cannot be encoded.
type jsonEncoder struct{}

func (jsonEncoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	if e.Type == "Poison" {
		return nil, "", 0, errors.New("no schema for event type Poison")
	}
	b, err := json.Marshal(e)
	return b, "application/json", 42, err
}

// kafkaEnv is a test's topics: a unique prefix, topics "<prefix>.note" and "<prefix>.order".
type kafkaEnv struct {
	brokers []string
	prefix  string
}

func newKafka(t *testing.T) kafkaEnv { return newKafkaTB(t) }

func newKafkaTB(t testing.TB) kafkaEnv {
	t.Helper()
	k := kafkaEnv{brokers: testenv.KafkaBrokers(t), prefix: "test-" + testenv.UniqueName(t)}
	topics := []relay.Topic{{Name: kafkawire.Topic(k.prefix, "note"), Partitions: 3, ReplicationFactor: 1}, {Name: kafkawire.Topic(k.prefix, "order"), Partitions: 3, ReplicationFactor: 1}}
	if err := relay.EnsureTopics(context.Background(), k.brokers, topics, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(k.brokers...)}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: k.topics()})
	})
	return k
}

// run runs a relay on the outbox until the returned stop is called or the test ends.
func (k kafkaEnv) run(t testing.TB, o relay.Outbox, cfg relay.Config) (stop func()) {
	t.Helper()
	cfg.Brokers, cfg.TopicPrefix = k.brokers, k.prefix
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 50 * time.Millisecond
	}
	_, stop = relaytest.Start(t, o, jsonEncoder{}, cfg)
	return stop
}

// topics are the names of the test's topics.
func (k kafkaEnv) topics() []string {
	return []string{kafkawire.Topic(k.prefix, "note"), kafkawire.Topic(k.prefix, "order")}
}

// consumeAll reads the records of the test's topics until every stream of want has arrived
// whole (duplicates do not count) or the deadline.
func (k kafkaEnv) consumeAll(t *testing.T, want map[string]int64, within time.Duration) []relaytest.Record {
	t.Helper()
	return k.consumeUntil(t, within, func(recs []relaytest.Record) bool {
		next := map[string]int64{}
		for _, r := range recs {
			if r.Version == next[r.Stream] {
				next[r.Stream]++
			}
		}
		for s, n := range want {
			if next[s] < n {
				return false
			}
		}
		return true
	})
}

// distinct counts the events among the records, each once.
func distinct(recs []relaytest.Record) int {
	type event struct {
		stream  string
		version int64
	}
	seen := map[event]bool{}
	for _, r := range recs {
		seen[event{r.Stream, r.Version}] = true
	}
	return len(seen)
}

// consumeUntil reads the records of the test's topics until done says so or the deadline.
func (k kafkaEnv) consumeUntil(t *testing.T, within time.Duration, done func([]relaytest.Record) bool) []relaytest.Record {
	t.Helper()
	return relaytest.Consume(t, k.brokers, k.topics(), within, done)
}

// appendMany runs appenders appenders of appends appends each over the streams, on the
// stores in turn, and returns the events appended per stream.
func appendMany(t *testing.T, stores []*mongodb.Store, appenders, appends int, streams []string) map[string]int64 {
	t.Helper()
	return relaytest.AppendConcurrently(t, appenders, appends, func(i, j int) (events.Store, string, []events.Event) {
		return stores[i%len(stores)], streams[(i+j)%len(streams)], noted(t, 1+(i+j)%3)
	})
}

func total(want map[string]int64) int {
	n := 0
	for _, v := range want {
		n += int(v)
	}
	return n
}

// waitEmpty polls until the outbox is empty.
func waitEmpty(t *testing.T, o *mongodb.Outbox) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		empty, err := o.Empty(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if empty {
			return
		}
		if time.Now().After(deadline) {
			n, _ := o.Waiting(context.Background())
			t.Fatalf("%d appends left in the outbox after 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutbox_Relay: a relay publishes every event of concurrent appenders on several streams,
// two stores (processes) among them, in per-stream order, while they append; the outbox ends
// empty and the statistics still count every event.
func TestOutbox_Relay(t *testing.T) {
	s, db := newStore(t, mongodb.Options{})
	other, err := mongodb.New(t.Context(), db, mongodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := newKafka(t)
	k.run(t, s.Outbox(), relay.Config{})
	streams := []string{"note-a", "note-b", "note-c", "order-1", "order-2", "order-3"}
	want := appendMany(t, []*mongodb.Store{s, other}, 12, 8, streams)
	recs := k.consumeAll(t, want, time.Minute)
	if dups := relaytest.CheckOrder(t, recs, want); dups != 0 {
		t.Errorf("%d duplicates with one relay in steady state", dups)
	}
	waitEmpty(t, s.Outbox())
	st, err := s.Stats(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalEvents != int64(total(want)) {
		t.Errorf("stats after publishing: %d events, want %d", st.TotalEvents, total(want))
	}
}

// TestOutbox_Lead: one session leads at a time; a closed session hands the lease over at
// once; a session whose relay vanished without closing it (nobody renews it) loses the lease when it expires, settles nothing after, and another relay takes
// over.
func TestOutbox_Lead(t *testing.T) {
	_, db := newStore(t, mongodb.Options{})
	const ttl = time.Second
	o := mongodb.NewOutbox(db, mongodb.Options{LeaseTTL: ttl})
	ctx := t.Context()
	a, err := o.Lead(ctx, 7, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*ttl)
	_, err = o.Lead(wctx, 7, 10*time.Millisecond)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second relay led while the first renewed its lease: %v", err)
	}
	if a.Lost() {
		t.Fatal("the first session lost a lease it renewed")
	}
	other, err := o.Lead(ctx, 8, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("another lock key: %v", err)
	}
	other.Close()

	a.Close()
	wctx, cancel = context.WithTimeout(ctx, ttl/2)
	b, err := o.Lead(wctx, 7, 10*time.Millisecond)
	cancel()
	if err != nil {
		t.Fatalf("a closed session did not hand its lease over at once: %v", err)
	}

	// b's relay vanishes: its renewals stop, nobody closes it.
	b.Close()
	b, err = o.Lead(ctx, 7, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	mongodb.Vanish(b)
	started := time.Now()
	c, err := o.Lead(ctx, 7, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if waited := time.Since(started); waited < ttl/2 {
		t.Errorf("took over after %v, before the lease could expire (%v)", waited, ttl)
	}
	if !b.Lost() {
		t.Error("the vanished session does not know it lost the lease")
	}
	err = b.Settle(ctx, []outbox.Settlement{{StreamID: "note-1", FirstVersion: 0}})
	if !errors.Is(err, mongodb.ErrLeaseLost) {
		t.Errorf("the vanished session settled: %v, want ErrLeaseLost", err)
	}
	if _, err := b.Pending(ctx, 10, 1<<20); !errors.Is(err, mongodb.ErrLeaseLost) {
		t.Errorf("the vanished session read: %v, want ErrLeaseLost", err)
	}
	if c.Lost() {
		t.Error("the new session lost its lease")
	}
}

// TestOutbox_Lead_SlowRenewal: a renewal that lands within the margin of the lease's expiry
// as it was before loses the session instead of extending the lease, because another relay
// may have read the term as expired and taken the next one meanwhile.
func TestOutbox_Lead_SlowRenewal(t *testing.T) {
	_, db := newStore(t, mongodb.Options{})
	const ttl, margin = time.Second, time.Second / 5
	o := mongodb.NewOutbox(db, mongodb.Options{LeaseTTL: ttl})
	base := time.Now()
	var offset atomic.Int64 // nanoseconds past base on the outbox's clock
	var turns atomic.Int32
	turned := make(chan struct{})
	mongodb.SetClock(o, func() time.Time { return base.Add(time.Duration(offset.Load())) }, func(step string) {
		if turns.Load() > 0 {
			return
		}
		switch step {
		case "tick": // the renewal starts a margin after the lease was taken...
			offset.Store(int64(margin))
		case "updated": // ...and lands just inside the margin of the old expiry.
			offset.Store(int64(ttl - margin + time.Millisecond))
		case "turn":
			turns.Add(1)
			close(turned)
		}
	})
	s, err := o.Lead(t.Context(), 7, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case <-turned:
	case <-time.After(10 * time.Second):
		t.Fatal("the lease was not renewed within 10s")
	}
	if !s.Lost() {
		t.Error("the session trusts a lease whose renewal landed within the margin of its old expiry")
	}
}

// TestOutbox_Lead_BoundedContext: the context given to Lead bounds the wait for the lease,
// not the session: the session goes on renewing its lease after that context ends, until it
// is closed.
func TestOutbox_Lead_BoundedContext(t *testing.T) {
	_, db := newStore(t, mongodb.Options{})
	const ttl = 500 * time.Millisecond
	o := mongodb.NewOutbox(db, mongodb.Options{LeaseTTL: ttl})
	turned := make(chan struct{}, 64)
	mongodb.SetClock(o, time.Now, func(step string) {
		if step == "turn" {
			select {
			case turned <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	s, err := o.Lead(ctx, 7, 10*time.Millisecond)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Renewals every fifth of the time to live: 10 of them outlast the lease taken twice.
	timeout := time.After(10 * time.Second)
	for i := range 10 {
		select {
		case <-turned:
		case <-timeout:
			t.Fatalf("%d renewals in 10s after Lead's context ended, want 10", i)
		}
	}
	if s.Lost() {
		t.Error("the session lost its lease after Lead's context ended")
	}
}

// TestOutbox_TwoRelays: two relays on one outbox, one publishing; every event arrives in
// order, and the other relay never published.
func TestOutbox_TwoRelays(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	k := newKafka(t)
	reg1, reg2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	k.run(t, s.Outbox(), relay.Config{Metrics: relay.NewMetrics(reg1)})
	k.run(t, s.Outbox(), relay.Config{Metrics: relay.NewMetrics(reg2)})
	streams := []string{"note-a", "note-b", "order-1"}
	want := appendMany(t, []*mongodb.Store{s}, 6, 6, streams)
	recs := k.consumeAll(t, want, time.Minute)
	if dups := relaytest.CheckOrder(t, recs, want); dups != 0 {
		t.Errorf("%d duplicates with two relays", dups)
	}
	waitEmpty(t, s.Outbox())
	p1, p2 := published(t, reg1), published(t, reg2)
	if p1 != 0 && p2 != 0 || p1+p2 != float64(total(want)) {
		t.Errorf("the relays published %v and %v events, want one of them all %d", p1, p2, total(want))
	}
}

// published reads the published counter of the relay whose metrics are on reg.
func published(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "annals_relay_published_events_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no annals_relay_published_events_total")
	return 0
}

// TestOutbox_RelayVanishes: the publishing relay loses its connection to the database in the
// middle of a backlog, without closing its session; a second relay takes over once the lease
// expires, and every event arrives, in per-stream order.
func TestOutbox_RelayVanishes(t *testing.T) {
	s, db := newStore(t, mongodb.Options{})
	k := newKafka(t)
	const ttl = time.Second
	// The first relay's own client, broken later.
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv("MONGODB_URI")).SetTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	first := mongodb.NewOutbox(client.Database(db.Name()), mongodb.Options{LeaseTTL: ttl})
	reg1 := prometheus.NewRegistry()
	stopFirst := k.run(t, first, relay.Config{Metrics: relay.NewMetrics(reg1), MaxBatchEvents: 20})

	streams := []string{"note-a", "note-b", "note-c", "order-1"}
	want := appendMany(t, []*mongodb.Store{s}, 8, 10, streams)
	deadline := time.Now().Add(30 * time.Second)
	for published(t, reg1) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first relay published nothing in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := client.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := published(t, reg1)
	more := appendMany(t, []*mongodb.Store{s}, 4, 5, streams)
	for st, n := range more {
		want[st] += n
	}
	reg2 := prometheus.NewRegistry()
	k.run(t, mongodb.NewOutbox(db, mongodb.Options{LeaseTTL: ttl}), relay.Config{Metrics: relay.NewMetrics(reg2)})
	recs := k.consumeAll(t, want, time.Minute)
	dups := relaytest.CheckOrder(t, recs, want)
	waitEmpty(t, s.Outbox())
	stopFirst()
	if published(t, reg2) == 0 {
		t.Error("the second relay published nothing: it never took over")
	}
	t.Logf("%d records, %v published before the cut, %d again after the take-over", len(recs), before, dups)
}

// TestOutbox_Hold: a stream with an event the encoder cannot encode is held, its later
// appends behind it, while other streams flow; the hold survives a restart of the relay;
// Retry tries it again (held again: the event is still poison), Skip gives it up and the
// appends behind it are published.
func TestOutbox_Hold(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	o := s.Outbox()
	k := newKafka(t)
	ctx := t.Context()
	appendTyped := func(stream, typ string, n int) {
		t.Helper()
		evs := make([]events.Event, n)
		for i := range evs {
			evs[i] = events.Event{Type: typ, Data: []byte(`{}`)}
		}
		if _, err := s.Append(ctx, stream, events.Any(), evs, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	appendTyped("order-bad", "Noted", 2)
	appendTyped("order-bad", "Poison", 1)
	appendTyped("order-bad", "Noted", 3)
	appendTyped("note-good", "Noted", 4)
	stop := k.run(t, o, relay.Config{})
	appendTyped("order-bad", "Noted", 1) // behind the hold, written after it
	appendTyped("note-good", "Noted", 1)
	recs := k.consumeUntil(t, time.Minute, func(recs []relaytest.Record) bool { return distinct(recs) >= 7 })
	relaytest.CheckOrder(t, recs, map[string]int64{"order-bad": 2, "note-good": 5})

	holds := waitHolds(t, o, 1)
	h := holds[0]
	if h.StreamID != "order-bad" || h.FirstVersion != 2 || h.LastVersion != 2 || h.Category != "order" || h.Reason == "" || h.Waiting != 3 {
		t.Errorf("hold %+v, want order-bad@2..2 with a reason and 3 appends waiting", h)
	}
	stop()
	k.run(t, o, relay.Config{}) // a new relay: the hold survives
	if n, err := o.Waiting(ctx); err != nil || n != 3 {
		t.Errorf("waiting after a restart: %d, %v; want 3", n, err)
	}
	if _, err := o.Retry(ctx, "note-good"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("retry of a stream not held: %v, want ErrNotHeld", err)
	}
	released, err := o.Retry(ctx, "order-bad")
	if err != nil || released.FirstVersion != 2 {
		t.Fatalf("retry: %+v, %v", released, err)
	}
	holds = waitHolds(t, o, 1) // still poison: held again
	if holds[0].FirstVersion != 2 {
		t.Errorf("held again at %d, want 2", holds[0].FirstVersion)
	}
	if _, err := o.Skip(ctx, "order-bad", 3, "ops", "test"); !errors.Is(err, outbox.ErrNotHeld) {
		t.Errorf("skip at the wrong version: %v, want ErrNotHeld", err)
	}
	if _, err := o.Skip(ctx, "order-bad", 2, "", ""); !errors.Is(err, mongodb.ErrSkipUnexplained) {
		t.Errorf("skip without who and why: %v, want ErrSkipUnexplained", err)
	}
	if _, err := o.Skip(ctx, "order-bad", 2, "ops", "no schema will come"); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	recs = k.consumeUntil(t, time.Minute, func(recs []relaytest.Record) bool { return distinct(recs) >= 11 })
	seen := map[int64]bool{}
	for _, r := range recs {
		if r.Stream == "order-bad" {
			seen[r.Version] = true
		}
	}
	for _, v := range []int64{0, 1, 3, 4, 5, 6} {
		if !seen[v] {
			t.Errorf("order-bad@%d was not published", v)
		}
	}
	if seen[2] {
		t.Error("the skipped event was published")
	}
	if holds, err := o.Holds(ctx); err != nil || len(holds) != 0 {
		t.Errorf("holds after the skip: %v, %v", holds, err)
	}
	got, err := s.ReadStream(ctx, "order-bad", 0, -1, 100)
	if err != nil || len(got) != 7 {
		t.Errorf("order-bad after the skip: %d events, %v; the skipped one stays in the store", len(got), err)
	}
}

// waitHolds polls until the outbox has n holds.
func waitHolds(t *testing.T, o *mongodb.Outbox, n int) []outbox.Hold {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		holds, err := o.Holds(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(holds) == n {
			return holds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d holds after 30s, want %d", len(holds), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutbox_Pending: a read returns whole appends oldest first within the event and byte
// budgets, sorted by stream and version, with each stream's head.
func TestOutbox_Pending(t *testing.T) {
	s, _ := newStore(t, mongodb.Options{})
	ctx := t.Context()
	for _, a := range []struct {
		stream string
		n      int
	}{{"note-b", 2}, {"note-a", 3}, {"note-b", 1}, {"note-a", 2}} {
		if _, err := s.Append(ctx, a.stream, events.Any(), noted(t, a.n), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := s.Outbox().Lead(ctx, 1, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, tc := range []struct {
		name      string
		maxEvents int
		maxBytes  int64
		want      []string // stream@first
	}{
		{"All", 100, 1 << 20, []string{"note-a@0", "note-a@3", "note-b@0", "note-b@2"}},
		{"EventBudget", 4, 1 << 20, []string{"note-a@0", "note-b@0"}}, // the second starts within 4 events
		{"EventBudgetOne", 1, 1 << 20, []string{"note-b@0"}},
		{"ByteBudgetFirstWhole", 100, 1, []string{"note-b@0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			window, err := sess.Pending(ctx, tc.maxEvents, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range window {
				got = append(got, fmt.Sprintf("%s@%d", a.StreamID, a.FirstVersion))
				if a.Head != 0 || a.Held || len(a.Events) != int(a.LastVersion-a.FirstVersion+1) || a.Bytes <= 0 {
					t.Errorf("%s@%d: head %d, held %v, %d events, %d bytes", a.StreamID, a.FirstVersion, a.Head, a.Held, len(a.Events), a.Bytes)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("window %v, want %v", got, tc.want)
			}
		})
	}
	if err := sess.Settle(ctx, []outbox.Settlement{{StreamID: "note-b", FirstVersion: 0}}); err != nil {
		t.Fatal(err)
	}
	window, err := sess.Pending(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(window) != 3 || window[2].StreamID != "note-b" || window[2].Head != 2 {
		t.Errorf("after settling note-b@0: %+v", window)
	}
	b, err := sess.Backlog(ctx)
	if err != nil || b.Appends != 3 || b.OldestAppend <= 0 || b.HeldStreams != 0 {
		t.Errorf("backlog %+v, %v", b, err)
	}
}

// TestOutbox_Contract runs the contract of an outbox through the relay, each part on a fresh
// database and topics of its own. The store has no late appends: every append is visible in
// the order of its positions.
//
// FerretDB reads the whole collection for each of the relay's reads, so the long parts run
// with fewer streams (Harness.Small), as under -short; ANNALS_MONGODB_FULL_CONTRACT=1 runs them
// at full size (make test-faults does).
func TestOutbox_Contract(t *testing.T) {
	small := os.Getenv("ANNALS_MONGODB_FULL_CONTRACT") == ""
	relaytest.Run(t, relaytest.Harness{Brokers: testenv.KafkaBrokers(t), Small: small, New: func(t *testing.T) relaytest.Subject {
		s, db := newStore(t, mongodb.Options{})
		o := s.Outbox()
		return relaytest.Subject{Store: s, Outbox: o, Operator: o, Skipped: func(ctx context.Context) ([]relaytest.SkippedAppend, error) {
			return skipped(ctx, db)
		}}
	}})
}

// skipped reads the appends an operator skipped from their documents.
func skipped(ctx context.Context, db *mongo.Database) ([]relaytest.SkippedAppend, error) {
	cur, err := db.Collection("appends").Find(ctx, bson.D{{Key: "dead", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetSort(bson.D{{Key: "stream", Value: 1}, {Key: "fv", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []struct {
		Stream string `bson:"stream"`
		First  int64  `bson:"fv"`
		Dead   struct {
			Reason string `bson:"reason"`
			By     string `bson:"by"`
			Why    string `bson:"why"`
		} `bson:"dead"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]relaytest.SkippedAppend, len(docs))
	for i, d := range docs {
		out[i] = relaytest.SkippedAppend{StreamID: d.Stream, FirstVersion: d.First, Reason: d.Dead.Reason, By: d.Dead.By, Why: d.Dead.Why}
	}
	return out, nil
}

package feed_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/inmem"
	"github.com/annals-dev/annals/pkg/feed"
)

// newFeed returns a feed on store, closed when the test ends.
func newFeed(tb testing.TB, cfg feed.Config) *feed.Feed {
	tb.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	f, err := feed.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Close)
	return f
}

// appendTo appends n events of typ to stream.
func appendTo(tb testing.TB, s events.Appender, stream, typ string, n int) events.AppendResult {
	tb.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		e, err := events.NewEvent(typ, map[string]int{"i": i})
		if err != nil {
			tb.Fatal(err)
		}
		evs[i] = e
	}
	res, err := s.Append(tb.Context(), stream, events.Any(), evs, events.AppendOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// receive takes n events from sub, or fails the test after a while.
func receive(tb testing.TB, sub *feed.Subscription, n int) []events.Envelope {
	tb.Helper()
	var got []events.Envelope
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				tb.Fatalf("the subscription ended after %d of %d events: %v", len(got), n, sub.Err())
			}
			got = append(got, e)
		case <-deadline:
			tb.Fatalf("received %d of %d events", len(got), n)
		}
	}
	return got
}

// quiet fails the test if sub receives an event within a short while.
func quiet(tb testing.TB, sub *feed.Subscription) {
	tb.Helper()
	select {
	case e, ok := <-sub.Events():
		tb.Fatalf("received %+v (open: %t), want nothing", e, ok)
	case <-time.After(50 * time.Millisecond):
	}
}

func positions(evs []events.Envelope) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.GlobalPosition
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for p := from; p <= to; p++ {
		out = append(out, p)
	}
	return out
}

// A subscription from now receives what commits after it started, in order, and only what its
// filter keeps; one from a position reads its way up first, then goes on live.
func TestFeed_Subscribe(t *testing.T) {
	store := inmem.New(inmem.Options{})
	appendTo(t, store, "user-1", "UserCreated", 3)
	f := newFeed(t, feed.Config{Source: store})

	t.Run("Now", func(t *testing.T) {
		sub, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if sub.After() != 3 {
			t.Errorf("started after %d, want the head 3", sub.After())
		}
		res := appendTo(t, store, "order-1", "OrderCreated", 2)
		f.Wake()
		if got := positions(receive(t, sub, 2)); !slices.Equal(got, span(res.FirstPosition, res.LastPosition)) {
			t.Errorf("received %v, want %d..%d", got, res.FirstPosition, res.LastPosition)
		}
	})
	t.Run("Filter", func(t *testing.T) {
		byType, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now, Types: []string{"ItemAdded", "OrderShipped"}})
		if err != nil {
			t.Fatal(err)
		}
		byCategory, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now, Category: "user"})
		if err != nil {
			t.Fatal(err)
		}
		both, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now, Types: []string{"UserCreated"}, Category: "order"})
		if err != nil {
			t.Fatal(err)
		}
		appendTo(t, store, "order-2", "ItemAdded", 2)
		appendTo(t, store, "user-2", "UserCreated", 1)
		appendTo(t, store, "order-2", "OrderShipped", 1)
		f.Wake()
		for _, e := range receive(t, byType, 3) {
			if e.Type != "ItemAdded" && e.Type != "OrderShipped" {
				t.Errorf("by type: received a %s", e.Type)
			}
		}
		if e := receive(t, byCategory, 1)[0]; e.StreamID != "user-2" {
			t.Errorf("by category: received an event of %s", e.StreamID)
		}
		quiet(t, byCategory)
		quiet(t, both)
	})
	t.Run("After", func(t *testing.T) {
		head, err := store.Head(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sub, err := f.Subscribe(t.Context(), feed.Filter{After: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if got := positions(receive(t, sub, int(head-1))); !slices.Equal(got, span(2, head)) {
			t.Errorf("caught up with %v, want 2..%d", got, head)
		}
		res := appendTo(t, store, "order-3", "OrderCreated", 1)
		f.Wake()
		if got := receive(t, sub, 1)[0].GlobalPosition; got != res.FirstPosition {
			t.Errorf("then received %d, want %d", got, res.FirstPosition)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		if _, err := f.Subscribe(t.Context(), feed.Filter{After: -2}); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("after -2: %v, want ErrInvalid", err)
		}
	})
}

// A subscriber that does not take its events is dropped once its buffer is full, with
// ErrSlow, holding no more than its buffer; the others go on receiving everything.
func TestFeed_Slow(t *testing.T) {
	store := inmem.New(inmem.Options{})
	reg := prometheus.NewRegistry()
	const buffer = 4
	f := newFeed(t, feed.Config{Source: store, Buffer: buffer, Metrics: feed.NewMetrics(reg)})
	slow, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Envelope
	for range 10 {
		appendTo(t, store, "order-1", "ItemAdded", 3)
		f.Wake()
		got = append(got, receive(t, fast, 3)...)
	}
	if !slices.Equal(positions(got), span(1, 30)) {
		t.Errorf("the fast subscriber received %v, want 1..30", positions(got))
	}
	var held []events.Envelope
	for e := range slow.Events() {
		held = append(held, e)
	}
	if !errors.Is(slow.Err(), feed.ErrSlow) || !slices.Equal(positions(held), span(1, buffer)) {
		t.Errorf("the slow subscriber ended with %v holding %v; want ErrSlow, 1..%d", slow.Err(), positions(held), buffer)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP annals_feed_dropped_total Subscribers dropped for falling more than their buffer behind (FEED_BUFFER).
# TYPE annals_feed_dropped_total counter
annals_feed_dropped_total 1
# HELP annals_feed_subscribers Subscriptions to the live feed of the all-stream that run now (GET /v1/subscribe).
# TYPE annals_feed_subscribers gauge
annals_feed_subscribers 1
`), "annals_feed_dropped_total", "annals_feed_subscribers"); err != nil {
		t.Error(err)
	}
}

// The poller reads no more at once than a subscriber's buffer holds, so that one page never
// drops a subscriber that keeps up.
func TestFeed_PageWithinBuffer(t *testing.T) {
	store := inmem.New(inmem.Options{})
	src := &counting{AllReader: store}
	f := newFeed(t, feed.Config{Source: src, Buffer: 5, Page: 100})
	sub, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, store, "order-1", "ItemAdded", 5)
	f.Wake()
	receive(t, sub, 5)
	if max := src.largest.Load(); max != 5 {
		t.Errorf("the poller read pages of up to %d events, want the buffer's 5", max)
	}
}

// value gathers the value of the metric of that name from reg.
func value(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	tb.Fatalf("no metric %s", name)
	return 0
}

// Subscriptions beyond MaxSubscribers are refused until one ends; Close ends them all and
// refuses more.
func TestFeed_Limits(t *testing.T) {
	store := inmem.New(inmem.Options{})
	f := newFeed(t, feed.Config{Source: store, MaxSubscribers: 2})
	a, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	b, err := f.Subscribe(ctx, feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now}); !errors.Is(err, feed.ErrTooManySubscribers) {
		t.Fatalf("a third subscriber: %v, want ErrTooManySubscribers", err)
	}
	cancel()
	if _, ok := <-b.Events(); ok || !errors.Is(b.Err(), context.Canceled) {
		t.Errorf("after its context was cancelled, the subscription is open %t with %v", ok, b.Err())
	}
	c, err := f.Subscribe(t.Context(), feed.Filter{After: 0})
	if err != nil {
		t.Fatalf("a subscriber after one left: %v", err)
	}
	f.Close()
	for _, s := range []*feed.Subscription{a, c} {
		if _, ok := <-s.Events(); ok || !errors.Is(s.Err(), feed.ErrClosed) {
			t.Errorf("after Close the subscription is open %t with %v", ok, s.Err())
		}
	}
	if _, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now}); !errors.Is(err, feed.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// counting counts a source's reads, and fails them while failing is set.
type counting struct {
	events.AllReader
	reads   atomic.Int64
	largest atomic.Int64 // the largest limit asked for
	failing atomic.Bool
}

func (c *counting) ReadAll(ctx context.Context, q events.AllQuery) ([]events.Envelope, error) {
	c.reads.Add(1)
	if int64(q.Limit) > c.largest.Load() {
		c.largest.Store(int64(q.Limit))
	}
	if c.failing.Load() {
		return nil, errors.New("the store is away")
	}
	return c.AllReader.ReadAll(ctx, q)
}

// The poller reads once a round for every subscriber, and not at all without any.
func TestFeed_OneReadForAll(t *testing.T) {
	store := inmem.New(inmem.Options{})
	src := &counting{AllReader: store}
	f := newFeed(t, feed.Config{Source: src, Poll: 20 * time.Millisecond})
	const subscribers = 100
	subs := make([]*feed.Subscription, subscribers)
	for i := range subs {
		s, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	before := src.reads.Load()
	appendTo(t, store, "order-1", "ItemAdded", 1)
	f.Wake()
	for _, s := range subs {
		receive(t, s, 1)
	}
	time.Sleep(100 * time.Millisecond) // five polls: what is measured is the reads in a while
	if n := src.reads.Load() - before; n >= subscribers/4 {
		t.Errorf("%d reads in five polls for %d subscribers, want one a round", n, subscribers)
	}
	for _, s := range subs {
		s.Close()
	}
	idle := src.reads.Load()
	time.Sleep(100 * time.Millisecond) // five polls: what is measured is that nothing reads
	if n := src.reads.Load() - idle; n > 1 {
		t.Errorf("%d reads without a subscriber, want none", n)
	}
}

// While the store cannot be read, the subscribers stay subscribed; once it can, they receive
// what they missed.
func TestFeed_StoreAway(t *testing.T) {
	store := inmem.New(inmem.Options{})
	src := &counting{AllReader: store}
	reg := prometheus.NewRegistry()
	f := newFeed(t, feed.Config{Source: src, Poll: 5 * time.Millisecond, Metrics: feed.NewMetrics(reg)})
	sub, err := f.Subscribe(t.Context(), feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	src.failing.Store(true)
	appendTo(t, store, "order-1", "ItemAdded", 3)
	f.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for value(t, reg, "annals_feed_read_errors_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed read counted")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	quiet(t, sub)
	src.failing.Store(false)
	if got := positions(receive(t, sub, 3)); !slices.Equal(got, span(1, 3)) {
		t.Errorf("once the store was back: %v, want 1..3", got)
	}
}

func ExampleFeed_Subscribe() {
	store := inmem.New(inmem.Options{})
	f, err := feed.New(feed.Config{Source: store})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // unsubscribes
	sub, err := f.Subscribe(ctx, feed.Filter{After: feed.Now, Types: []string{"OrderCreated"}})
	if err != nil {
		panic(err)
	}
	for _, typ := range []string{"OrderCreated", "ItemAdded", "OrderCreated"} {
		e, _ := events.NewEvent(typ, map[string]string{})
		if _, err := store.Append(ctx, "order-1", events.Any(), []events.Event{e}, events.AppendOptions{}); err != nil {
			panic(err)
		}
	}
	f.Wake() // as the store's OnAppend does
	for range 2 {
		e := <-sub.Events()
		fmt.Println(e.GlobalPosition, e.Type)
	}
	// Output:
	// 1 OrderCreated
	// 3 OrderCreated
}

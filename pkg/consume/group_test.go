package consume_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// Two members share the group and a rebalance happens mid-run: every event is handled,
// none before its predecessor, every partition is owned by one member at a time, and the
// commits reach the end.
func TestConsumer_RebalanceMidRun(t *testing.T) {
	const partitions = 6
	topic, dlq := testenv.Topic(t, partitions), testenv.Topic(t, 1)
	first, second := streams("g1", 200, 40), streams("g2", 200, 10)
	publish(t, topic, first)
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.BatchSize = 100
	h := newRecorder()
	// active counts, per partition and member, the handlers running: a partition changes
	// hands only between generations, when no handler of its old owner runs any more.
	var mu sync.Mutex
	var active [partitions][3]int
	var overlaps atomic.Int32
	member := func(id int) consume.Handler {
		return consume.HandlerFunc(func(ctx context.Context, m *consume.Message) error {
			mu.Lock()
			active[m.Partition][id]++
			if active[m.Partition][3-id] > 0 {
				overlaps.Add(1)
			}
			mu.Unlock()
			defer func() { mu.Lock(); active[m.Partition][id]--; mu.Unlock() }()
			time.Sleep(time.Millisecond) // some work, so that the rebalance finds member A busy
			return h.Handle(ctx, m)
		})
	}
	a := start(t, cfg, member(1))
	waitFor(t, 30*time.Second, "member A to start", func() bool { return h.count() > 500 })
	b := start(t, cfg, member(2))
	waitFor(t, 60*time.Second, "both members to own partitions", func() bool {
		return len(a.c.Assigned()[topic]) > 0 && len(b.c.Assigned()[topic]) > 0
	})
	pa, pb := a.c.Assigned()[topic], b.c.Assigned()[topic]
	if len(pa)+len(pb) != partitions {
		t.Errorf("A owns %v and B owns %v; want the %d partitions split between them", pa, pb, partitions)
	}
	for _, p := range pa {
		for _, q := range pb {
			if p == q {
				t.Errorf("partition %d owned by both members", p)
			}
		}
	}
	publish(t, topic, second)
	all := len(first) + len(second)
	waitFor(t, 90*time.Second, "every event", func() bool { return h.count() == all })
	waitFor(t, 30*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, partitions) })
	a.halt(t)
	b.halt(t)
	if len(h.violations) > 0 {
		t.Fatalf("%d order violations, first: %s", len(h.violations), h.violations[0])
	}
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d times a partition was handled by both members at once", n)
	}
	t.Logf("%d events, %d deliveries (%d again after the rebalance)", all, h.total, h.total-all)
}

// With PostgresUnit and the inbox, effects happen once however often an event is delivered:
// the group is run twice over the same records, and a handler failure in the middle of a lane
// rolls back the lane's unit, which is then done message by message.
func TestConsumer_InboxAppliesEachEventOnce(t *testing.T) {
	pool := withEffects(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	recs := streams("h", 60, 10)
	publish(t, topic, recs)
	var flaky atomic.Int32
	effect := consume.HandlerFunc(func(ctx context.Context, m *consume.Message) error {
		if m.Event.StreamID == "user-h-5" && m.Event.Version == 4 && flaky.Add(1) <= 2 {
			return errors.New("transient failure")
		}
		_, err := consume.Tx(ctx).Exec(ctx, `insert into effects values ($1, $2)`, m.Event.StreamID, m.Event.Version)
		return err // a second insert would fail on the primary key
	})
	run := func(group string) {
		cfg := config(t, []string{topic}, dlq, group)
		cfg.Unit = consume.PostgresUnit(pool)
		cfg.Middleware = []consume.Middleware{consume.Inbox{Group: "effects"}.Middleware()}
		r := start(t, cfg, effect)
		waitFor(t, 60*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
		r.halt(t)
	}
	run(testenv.UniqueName(t))
	// A second group with the same inbox name sees every event again, as after a replay or a
	// lost commit: the inbox skips them all.
	run(testenv.UniqueName(t) + "-again")
	var n int
	if err := pool.QueryRow(ctx, `select count(*) from effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(recs) {
		t.Errorf("%d effects, want %d (one per event)", n, len(recs))
	}
	if got := flaky.Load(); got < 3 {
		t.Errorf("the flaky handler ran %d times for its event; want the failures and a success", got)
	}
	if letters := dead(t, dlq, 1); len(letters) != 0 {
		t.Errorf("%d dead letters, want none", len(letters))
	}
	var claimed int
	if err := pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = 'effects'`).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed != len(recs) {
		t.Errorf("%d inbox rows, want %d", claimed, len(recs))
	}
}

// A replay moves a stopped group back to a time: the runtime then delivers again every event
// recorded from then on, and none from before.
func TestConsumer_ReplayRedeliversFromTime(t *testing.T) {
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	before := streams("r1", 20, 5)
	publish(t, topic, before)
	since := time.Now()
	after := streams("r2", 20, 5)
	publish(t, topic, after)
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	h := newRecorder()
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "every event", func() bool { return h.count() == len(before)+len(after) })
	waitFor(t, 30*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r.halt(t)

	plan, err := consume.Replay(context.Background(), testenv.KafkaBrokers(t), group, []string{topic}, since, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay plan: %+v", plan.Partitions)
	again := newRecorder()
	r2 := start(t, cfg, again)
	waitFor(t, 60*time.Second, "the replayed events", func() bool { return again.count() == len(after) })
	waitFor(t, 30*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r2.halt(t)
	for _, e := range before {
		if again.seen[e] != 0 {
			t.Fatalf("%v, recorded before the replay's time, was delivered again", e)
		}
	}
	for _, e := range after {
		if again.seen[e] != 1 {
			t.Fatalf("%v delivered %d times after the replay, want once", e, again.seen[e])
		}
	}
}

// batchEffects applies a lane's share of a batch with one statement, and refuses any batch
// holding the event it was told to refuse, which the runtime then handles one by one.
type batchEffects struct {
	refuse  rec
	batches atomic.Int64
	singles atomic.Int64
}

func (b *batchEffects) HandleBatch(ctx context.Context, ms []*consume.Message) error {
	streams, versions := make([]string, len(ms)), make([]int64, len(ms))
	for i, m := range ms {
		if (rec{m.Event.StreamID, m.Event.Version}) == b.refuse {
			return errors.New("not in a batch")
		}
		streams[i], versions[i] = m.Event.StreamID, m.Event.Version
	}
	b.batches.Add(1)
	_, err := consume.Tx(ctx).Exec(ctx, `insert into effects select * from unnest($1::text[], $2::int8[])`, streams, versions)
	return err
}

func (b *batchEffects) Handle(ctx context.Context, m *consume.Message) error {
	b.singles.Add(1)
	_, err := consume.Tx(ctx).Exec(ctx, `insert into effects values ($1, $2)`, m.Event.StreamID, m.Event.Version)
	return err
}

func TestConsumer_BatchHandlerFallsBackOneByOne(t *testing.T) {
	pool := withEffects(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	recs := streams("k", 60, 10)
	publish(t, topic, recs)
	h := &batchEffects{refuse: rec{"user-k-9", 5}}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Unit = consume.PostgresUnit(pool)
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r.halt(t)
	var n int
	if err := pool.QueryRow(ctx, `select count(*) from effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(recs) {
		t.Errorf("%d effects, want %d (one per event)", n, len(recs))
	}
	if h.batches.Load() == 0 || h.singles.Load() == 0 {
		t.Errorf("%d batches and %d single messages; want both paths taken", h.batches.Load(), h.singles.Load())
	}
	if h.singles.Load() >= int64(len(recs)) {
		t.Errorf("%d messages handled one by one: the batch path was not used", h.singles.Load())
	}
}

// TestConsumer_BlockedStreamLeavesItsLaneBatched: the messages of a blocked stream are parked
// one by one, and the other streams of their lane still go in one unit of work.
func TestConsumer_BlockedStreamLeavesItsLaneBatched(t *testing.T) {
	pool := withEffects(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	group := testenv.UniqueName(t)
	const blocked = "user-bl-0"
	if _, err := pool.Exec(ctx, `insert into annals_consumer_blocks (group_name, stream_id, topic, partition, "offset", reason)
		values ($1, $2, 'elsewhere', 0, 0, 'blocked by the test')`, group, blocked); err != nil {
		t.Fatal(err)
	}
	recs := streams("bl", 20, 10)
	publish(t, topic, recs)
	h := &batchEffects{}
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Unit = consume.PostgresUnit(pool)
	cfg.Blocks = consume.PostgresBlocks(pool)
	cfg.Lanes = 1 // every batch's messages in one lane with the blocked stream's
	// Every batch fills with what the partitions hold, so that none holds a single message of
	// another stream, which goes alone whatever the blocked stream does.
	cfg.Linger = time.Second
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 3) })
	r.halt(t)
	var applied, ofBlocked int
	if err := pool.QueryRow(ctx, `select count(*), count(*) filter (where stream_id = $1) from effects`, blocked).Scan(&applied, &ofBlocked); err != nil {
		t.Fatal(err)
	}
	if want := len(recs) - 10; applied != want || ofBlocked != 0 {
		t.Errorf("%d effects, %d of the blocked stream; want %d, none of it", applied, ofBlocked, want)
	}
	if h.singles.Load() != 0 || h.batches.Load() == 0 {
		t.Errorf("%d batches and %d messages handled one by one; want only batches", h.batches.Load(), h.singles.Load())
	}
}

// withEffects is a migrated schema with a table of effects, one row per applied event.
func withEffects(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := migrated(t)
	if _, err := pool.Exec(context.Background(), `create table effects (stream_id text, version bigint, primary key (stream_id, version))`); err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestConsumer_SmallBatchIsOneUnit: with a Unit, a batch of a few messages of different
// streams is one unit of work, not one per lane, and a large batch still spreads over lanes.
func TestConsumer_SmallBatchIsOneUnit(t *testing.T) {
	for _, tc := range []struct {
		streams  int
		minUnits int
		maxUnits int
	}{
		{streams: 6, minUnits: 1, maxUnits: 1},
		{streams: 32, minUnits: 2, maxUnits: 4},
		{streams: 64, minUnits: 8, maxUnits: 8}, // every lane, no more
	} {
		t.Run(strconv.Itoa(tc.streams), func(t *testing.T) {
			pool := withEffects(t)
			// One partition: one fetch holds every record, so that the batch fills at once.
			topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
			group := testenv.UniqueName(t)
			recs := streams("sb", tc.streams, 1)
			publish(t, topic, recs)
			h := &batchEffects{}
			cfg := config(t, []string{topic}, dlq, group)
			var units atomic.Int64
			unit := consume.PostgresUnit(pool)
			cfg.Unit = func(ctx context.Context, fn func(context.Context) error) error {
				units.Add(1)
				return unit(ctx, fn)
			}
			// One batch of every record: it fills for up to a second, and ends when full.
			cfg.BatchSize, cfg.Linger = len(recs), time.Second
			r := start(t, cfg, h)
			waitFor(t, 60*time.Second, "the commits to reach the end", func() bool { return caughtUp(t, group, topic, 1) })
			r.halt(t)
			var applied int
			if err := pool.QueryRow(context.Background(), `select count(*) from effects`).Scan(&applied); err != nil {
				t.Fatal(err)
			}
			if applied != len(recs) {
				t.Fatalf("%d effects, want %d", applied, len(recs))
			}
			if n := units.Load(); n < int64(tc.minUnits) || n > int64(tc.maxUnits) || h.singles.Load() != 0 {
				t.Errorf("%d messages of as many streams in %d units of work (%d handled alone); want %d to %d units, none alone",
					len(recs), n, h.singles.Load(), tc.minUnits, tc.maxUnits)
			}
		})
	}
}

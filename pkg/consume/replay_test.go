package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// replayStamps are the record timestamps of each partition of a replay fixture, in
// milliseconds after its base time.
var replayStamps = [][]int{
	0: {0, 1000, 2000, 3000, 4000, 5000},
	1: {0, 1000, 2000},                     // every record before since: the end offset
	2: {10000, 11000, 12000, 13000, 14000}, // every record after since: offset 0
	3: {1000, 2000, 2500, 3000},            // a record exactly at since
	4: {},                                  // empty
}

// What the fixture's offsets are at since (base+2500ms) and until (base+11000ms).
var (
	replayWantEnd   = []int64{6, 3, 5, 4, 0}
	replayWantSince = []int64{3, 3, 0, 2, 0}
	replayWantUntil = []int64{6, 3, 1, 4, 0}
)

type replayFixture struct {
	brokers      []string
	topic        string
	client       *kafka.Client
	since, until time.Time
}

// newReplayFixture creates a topic with len(replayStamps) partitions holding records with the
// timestamps of replayStamps, an hour in the past.
func newReplayFixture(tb testing.TB) *replayFixture {
	tb.Helper()
	brokers := testenv.KafkaBrokers(tb)
	f := &replayFixture{
		brokers: brokers,
		topic:   testenv.Topic(tb, len(replayStamps)),
		client:  &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second},
	}
	base := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	f.since, f.until = base.Add(2500*time.Millisecond), base.Add(11000*time.Millisecond)
	for p, stamps := range replayStamps {
		var records []replayRecord
		for j, ms := range stamps {
			records = append(records, replayRecord{base.Add(time.Duration(ms) * time.Millisecond), replayValue(p, j)})
		}
		if len(records) > 0 {
			f.produce(tb, p, records...)
		}
	}
	return f
}

func replayValue(partition, offset int) string { return fmt.Sprintf("p%d-o%d", partition, offset) }

type replayRecord struct {
	at    time.Time
	value string
}

func (f *replayFixture) produce(tb testing.TB, partition int, records ...replayRecord) {
	tb.Helper()
	// A new topic's partitions take a moment to get a leader: retry until they have one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var batch []kafka.Record // built for each attempt: a produce request consumes its records
		for _, r := range records {
			batch = append(batch, kafka.Record{
				Time: r.at, Key: kafka.NewBytes(fmt.Appendf(nil, "stream-%d", partition)), Value: kafka.NewBytes([]byte(r.value)),
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := f.client.Produce(ctx, &kafka.ProduceRequest{
			Topic: f.topic, Partition: partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(batch...),
		})
		cancel()
		if err == nil {
			err = resp.Error
		}
		if err == nil {
			return
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || !kerr.Temporary() || time.Now().After(deadline) {
			tb.Fatalf("produce to %s/%d: %v", f.topic, partition, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// commit commits offsets[p] for partition p (skipping -1) as an administrator.
func (f *replayFixture) commit(tb testing.TB, group string, offsets []int64) {
	tb.Helper()
	var commits []kafka.OffsetCommit
	for p, o := range offsets {
		if o >= 0 {
			commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: o})
		}
	}
	resp, err := f.client.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{f.topic: commits},
	})
	if err != nil {
		tb.Fatalf("commit offsets of %s: %v", group, err)
	}
	for _, p := range resp.Topics[f.topic] {
		if p.Error != nil {
			tb.Fatalf("commit offsets of %s on partition %d: %v", group, p.Partition, p.Error)
		}
	}
}

// committed reads the group's committed offset of every partition, -1 where it has none.
func (f *replayFixture) committed(tb testing.TB, group string) []int64 {
	tb.Helper()
	parts := make([]int, len(replayStamps))
	for p := range parts {
		parts[p] = p
	}
	resp, err := f.client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{f.topic: parts}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		tb.Fatalf("committed offsets of %s: %v", group, err)
	}
	got := slices.Repeat([]int64{-2}, len(replayStamps))
	for _, p := range resp.Topics[f.topic] {
		if p.Error != nil {
			tb.Fatalf("committed offset of %s on partition %d: %v", group, p.Partition, p.Error)
		}
		got[p.Partition] = max(p.CommittedOffset, -1)
	}
	return got
}

// reader is a member of the group reading the fixture's topic.
func (f *replayFixture) reader(group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: f.brokers, GroupID: group, Topic: f.topic,
		MaxWait: 250 * time.Millisecond, HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
	})
}

func TestReplay(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".g"
		f.commit(t, group, replayWantEnd)

		plan, err := consume.Replay(ctx, f.brokers, group, []string{f.topic}, f.since, f.until)
		if err != nil {
			t.Fatal(err)
		}
		if !plan.Committed || plan.Group != group || !strings.EqualFold(plan.State, "Empty") || plan.Members != 0 {
			t.Errorf("plan: committed %v, group %q, state %q, %d members; want committed, %q, Empty, 0",
				plan.Committed, plan.Group, plan.State, plan.Members, group)
		}
		replayCheckPartitions(t, f.topic, plan.Partitions, replayWantEnd, replayWantSince, replayWantUntil)
		if got := f.committed(t, group); !slices.Equal(got, replayWantSince) {
			t.Fatalf("committed offsets after the replay = %v, want %v", got, replayWantSince)
		}

		// A consumer of the group now receives exactly the records from since on, those
		// after until included. A fence record per partition, produced after the replay,
		// marks where each partition's re-delivery ends.
		for p := range replayStamps {
			f.produce(t, p, replayRecord{time.Now(), "fence"})
		}
		r := f.reader(group)
		defer r.Close()
		got := make([][]string, len(replayStamps))
		fenced := 0
		readCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for fenced < len(replayStamps) {
			m, err := r.FetchMessage(readCtx)
			if err != nil {
				t.Fatalf("fetch after %d fences: %v (so far %v)", fenced, err, got)
			}
			if string(m.Value) == "fence" {
				fenced++
				continue
			}
			got[m.Partition] = append(got[m.Partition], string(m.Value))
		}
		for p, stamps := range replayStamps {
			var want []string
			for j := int(replayWantSince[p]); j < len(stamps); j++ {
				want = append(want, replayValue(p, j))
			}
			if !slices.Equal(got[p], want) {
				t.Errorf("partition %d re-delivered %v, want %v", p, got[p], want)
			}
		}
	})

	t.Run("DryRun", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".g"
		f.commit(t, group, replayWantEnd)
		plan, err := consume.PlanReplay(ctx, f.brokers, group, []string{f.topic}, f.since, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Committed {
			t.Error("a dry run reports its plan as committed")
		}
		replayCheckPartitions(t, f.topic, plan.Partitions, replayWantEnd, replayWantSince, slices.Repeat([]int64{-1}, len(replayStamps)))
		if got := f.committed(t, group); !slices.Equal(got, replayWantEnd) {
			t.Errorf("committed offsets after a dry run = %v, want them unchanged: %v", got, replayWantEnd)
		}
	})

	t.Run("NeverForward", func(t *testing.T) {
		// Partition 0 is committed before since, partition 2 not at all: both stay as they
		// are, so that the group skips nothing it has not processed.
		f := newReplayFixture(t)
		group := f.topic + ".g"
		f.commit(t, group, []int64{1, 3, -1, 4, 0})
		plan, err := consume.Replay(ctx, f.brokers, group, []string{f.topic}, f.since, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{1, 3, -1, 2, 0}
		for _, p := range plan.Partitions {
			if p.New != want[p.Partition] || p.Moved() != (p.Partition == 3) {
				t.Errorf("partition %d: new %d moved %v, want %d moved %v", p.Partition, p.New, p.Moved(), want[p.Partition], p.Partition == 3)
			}
		}
		if got := f.committed(t, group); !slices.Equal(got, want) {
			t.Errorf("committed offsets = %v, want %v", got, want)
		}
	})

	t.Run("ErrActiveGroup", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".live"
		f.commit(t, group, replayWantEnd)
		r := f.reader(group)
		readCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { // a member that has joined and is fetching, waiting for new records
			defer close(done)
			for readCtx.Err() == nil {
				r.FetchMessage(readCtx)
			}
		}()
		t.Cleanup(func() { cancel(); <-done; r.Close() })
		replayAwaitGroup(t, f.client, group, "Stable", 1)

		_, err := consume.Replay(ctx, f.brokers, group, []string{f.topic}, f.since, time.Time{})
		var active *consume.ReplayActiveGroupError
		if !errors.As(err, &active) {
			t.Fatalf("Replay of a group with a live member: %v, want a *ReplayActiveGroupError", err)
		}
		if active.Group != group || active.State != "Stable" || active.Members != 1 {
			t.Errorf("error %+v, want group %q Stable with 1 member", active, group)
		}
		if msg := err.Error(); !strings.Contains(msg, group) || !strings.Contains(msg, "Stable") || !strings.Contains(msg, "1 live member") {
			t.Errorf("error %q does not name the group, its state and its members", msg)
		}
		if got := f.committed(t, group); !slices.Equal(got, replayWantEnd) {
			t.Errorf("committed offsets = %v, want them unchanged: %v", got, replayWantEnd)
		}

		// The broker refuses an administrator's commit while the group has members, which is
		// what makes a member joining between Replay's check and its commit harmless.
		resp, err := f.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
			GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{f.topic: {{Partition: 0, Offset: 0}}},
		})
		if err == nil && resp.Topics[f.topic][0].Error == nil {
			t.Error("the broker accepted a commit with generation -1 from a group with a live member")
		}

		// A dry run describes the group instead of failing.
		plan, err := consume.PlanReplay(ctx, f.brokers, group, []string{f.topic}, f.since, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if plan.State != "Stable" || plan.Members != 1 {
			t.Errorf("dry run: state %q with %d members, want Stable with 1", plan.State, plan.Members)
		}
	})

	t.Run("ErrUntilBeforeSince", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".g"
		f.commit(t, group, replayWantEnd)
		for _, until := range []time.Time{f.since, f.since.Add(-time.Second)} {
			_, err := consume.Replay(ctx, f.brokers, group, []string{f.topic}, f.since, until)
			if err == nil || !strings.Contains(err.Error(), "must be after since") {
				t.Errorf("until %v before since %v: %v, want an error saying so", until, f.since, err)
			}
		}
		if got := f.committed(t, group); !slices.Equal(got, replayWantEnd) {
			t.Errorf("committed offsets = %v, want them unchanged: %v", got, replayWantEnd)
		}
	})

	t.Run("ErrNoOffsets", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".never-committed"
		_, err := consume.Replay(ctx, f.brokers, group, []string{f.topic}, f.since, time.Time{})
		if !errors.Is(err, consume.ErrReplayNoOffsets) || !strings.Contains(err.Error(), group) {
			t.Fatalf("Replay of a group without offsets: %v, want ErrReplayNoOffsets naming the group", err)
		}
		if got := f.committed(t, group); !slices.Equal(got, slices.Repeat([]int64{-1}, len(replayStamps))) {
			t.Errorf("committed offsets = %v, want none", got)
		}
	})

	t.Run("ErrUnknownTopic", func(t *testing.T) {
		f := newReplayFixture(t)
		group := f.topic + ".g"
		f.commit(t, group, replayWantEnd)
		missing := f.topic + ".missing"
		_, err := consume.Replay(ctx, f.brokers, group, []string{f.topic, missing}, f.since, time.Time{})
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("Replay with a missing topic: %v, want an error naming it", err)
		}
		if got := f.committed(t, group); !slices.Equal(got, replayWantEnd) {
			t.Errorf("committed offsets = %v, want them unchanged: %v", got, replayWantEnd)
		}
	})
}

func replayCheckPartitions(tb testing.TB, topic string, got []consume.ReplayPartition, end, since, until []int64) {
	tb.Helper()
	if len(got) != len(end) {
		tb.Fatalf("%d partitions in the plan, want %d: %+v", len(got), len(end), got)
	}
	for p, g := range got {
		want := consume.ReplayPartition{Topic: topic, Partition: p, Old: end[p], New: since[p], Since: since[p], Until: until[p], End: end[p]}
		if g != want {
			tb.Errorf("partition %d:\n got %+v\nwant %+v", p, g, want)
		}
	}
}

// replayAwaitGroup polls until the group is in state with n members.
func replayAwaitGroup(tb testing.TB, client *kafka.Client, group, state string, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == state && len(resp.Groups[0].Members) == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("group %s did not become %s with %d member(s) within 30s (last: %+v, %v)", group, state, n, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Replaying the last two hours of the projector's events, after stopping the projectors.
func ExampleReplay() {
	ctx := context.Background()
	since := time.Now().Add(-2 * time.Hour)
	plan, err := consume.Replay(ctx, []string{"localhost:9092"}, "annals-projector", []string{"annals.user", "annals.order"}, since, time.Time{})
	var active *consume.ReplayActiveGroupError
	switch {
	case errors.As(err, &active):
		fmt.Printf("stop the %d consumers of %s first\n", active.Members, active.Group)
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	for _, p := range plan.Partitions {
		if p.Moved() {
			fmt.Printf("%s/%d: %d -> %d\n", p.Topic, p.Partition, p.Old, p.New)
		}
	}
}

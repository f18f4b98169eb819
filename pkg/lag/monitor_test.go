package lag_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/lag"
)

func TestMonitor_Poll(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, 3)
		f.produce(t, 0, 0, 10, 20, 30, 40)
		f.produce(t, 1, 5, 15, 25)
		group := f.topic + ".g"
		f.commit(t, group, map[int]int64{0: 2, 1: 3}) // partition 2: no commit

		m := f.monitor(t, 5) // every group reading the topic: discovered
		s, err := m.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Errors) > 0 {
			t.Errorf("poll errors: %v", s.Errors)
		}
		if len(s.Groups) != 1 || s.Groups[0].Name != group {
			t.Fatalf("groups %+v, want %s only", s.Groups, group)
		}
		g := s.Groups[0]
		// No live member: the group is reported all the same, from its committed offsets.
		if g.State != "Empty" || g.Members != 0 {
			t.Errorf("state %q with %d members, want Empty with 0", g.State, g.Members)
		}
		want := []lag.Partition{
			{Topic: f.topic, Partition: 0, Committed: 2, End: 5, Lag: 3, LagSeconds: f.clock.Now().Sub(f.at(20)).Seconds(), Oldest: f.at(20)},
			{Topic: f.topic, Partition: 1, Committed: 3, End: 3, Lag: 0, LagSeconds: 0},
		}
		checkPartitions(t, g.Partitions, want)
		if got := g.Lag(); got != 3 {
			t.Errorf("group lag %d, want 3", got)
		}
		if got := g.TopicLag(f.topic); got != 3 {
			t.Errorf("topic lag %d, want 3", got)
		}
		if got, want := g.MaxLagSeconds(), want[0].LagSeconds; got != want {
			t.Errorf("max lag seconds %v, want %v", got, want)
		}
		var ends []int64
		for _, tp := range s.Topics {
			ends = append(ends, tp.End)
		}
		if len(ends) != 3 || ends[0] != 5 || ends[1] != 3 || ends[2] != 0 {
			t.Errorf("end offsets %v, want [5 3 0]", ends)
		}
		if fetches := m.TimestampFetches(); fetches != 1 {
			t.Errorf("%d record fetches for one lagging partition, want 1", fetches)
		}

		// The group stands still while records keep coming: the lag grows, the oldest
		// unconsumed record stays the same, and no record is fetched again.
		f.clock.Add(10 * time.Second)
		f.produce(t, 0, 50)
		g = poll(t, m, group)
		want[0].End, want[0].Lag, want[0].LagSeconds = 6, 4, f.clock.Now().Sub(f.at(20)).Seconds()
		checkPartitions(t, g.Partitions, want)
		if fetches := m.TimestampFetches(); fetches != 1 {
			t.Errorf("%d record fetches after a poll of a group standing still, want still 1", fetches)
		}

		// It moves: the record at its new offset is fetched.
		f.commit(t, group, map[int]int64{0: 4})
		g = poll(t, m, group)
		want[0].Committed, want[0].Lag, want[0].Oldest, want[0].LagSeconds = 4, 2, f.at(40), f.clock.Now().Sub(f.at(40)).Seconds()
		checkPartitions(t, g.Partitions, want)
		if fetches := m.TimestampFetches(); fetches != 2 {
			t.Errorf("%d record fetches, want 2", fetches)
		}

		// Caught up: lag and lag in seconds are 0.
		f.commit(t, group, map[int]int64{0: 6})
		g = poll(t, m, group)
		want[0].Committed, want[0].Lag, want[0].Oldest, want[0].LagSeconds = 6, 0, time.Time{}, 0
		checkPartitions(t, g.Partitions, want)
	})

	t.Run("ConfiguredGroups", func(t *testing.T) {
		// A configured group is reported even before it has committed anything, and no
		// other group is.
		f := newFixture(t, 2)
		f.produce(t, 0, 0, 1)
		f.commit(t, f.topic+".other", map[int]int64{0: 1})
		never := f.topic + ".never"
		m := f.monitor(t, 5, never)
		s, err := m.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Groups) != 1 || s.Groups[0].Name != never {
			t.Fatalf("groups %+v, want %s only", s.Groups, never)
		}
		g := s.Groups[0]
		if len(g.Partitions) != 0 || g.Members != 0 || g.Status != lag.StatusUnknown {
			t.Errorf("group %+v, want no partitions, no members, status unknown", g)
		}
	})

	t.Run("RecordGoneToRetention", func(t *testing.T) {
		// A committed offset below the log start (deleted by retention) gets the age of the
		// first record left.
		f := newFixture(t, 1)
		f.produce(t, 0, 0, 10, 20, 30)
		testenv.DeleteRecords(t, f.topic, 0, 2)
		group := f.topic + ".g"
		f.commit(t, group, map[int]int64{0: 1})
		g := poll(t, f.monitor(t, 5, group), group)
		checkPartitions(t, g.Partitions, []lag.Partition{
			{Topic: f.topic, Partition: 0, Committed: 1, End: 4, Lag: 3, LagSeconds: f.clock.Now().Sub(f.at(20)).Seconds(), Oldest: f.at(20)},
		})
	})

	t.Run("MissingTopic", func(t *testing.T) {
		// A topic that does not exist yet is an error of the snapshot, not of the poll.
		f := newFixture(t, 1)
		m, err := lag.New(lag.Config{Brokers: f.brokers, Topics: []string{f.topic, f.topic + ".missing"}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Errors) != 1 || !strings.Contains(s.Errors[0].Error(), f.topic+".missing") {
			t.Errorf("errors %v, want one naming the missing topic", s.Errors)
		}
		if len(s.Topics) != 1 || s.Topics[0].Topic != f.topic {
			t.Errorf("topics %+v, want %s's partition", s.Topics, f.topic)
		}
	})
}

func checkPartitions(tb testing.TB, got, want []lag.Partition) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%d partitions, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if math.Abs(g.LagSeconds-w.LagSeconds) < 1e-6 {
			g.LagSeconds = w.LagSeconds
		}
		if !g.Oldest.Equal(w.Oldest) {
			tb.Errorf("partition %d: oldest unconsumed record at %v, want %v", g.Partition, g.Oldest, w.Oldest)
		}
		g.Oldest, w.Oldest = time.Time{}, time.Time{}
		if g != w {
			tb.Errorf("partition %d:\n got %+v\nwant %+v", g.Partition, g, w)
		}
	}
}

func TestMonitor_Run(t *testing.T) {
	f := newFixture(t, 1)
	m, err := lag.New(lag.Config{Brokers: f.brokers, Topics: []string{f.topic}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if m.Snapshot() != nil {
		t.Fatal("a snapshot before the first poll")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for m.Snapshot() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot within 30s of Run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v when its context ended, want nil", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lag.Config
		want string
	}{
		{"NoBrokers", lag.Config{Topics: []string{"t"}}, "no brokers"},
		{"NoTopics", lag.Config{Brokers: []string{"b:9092"}}, "no topics"},
		{"EmptyTopic", lag.Config{Brokers: []string{"b:9092"}, Topics: []string{"t", " "}}, "empty topic"},
		{"WindowOfOne", lag.Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Window: 1}, "at least 2"},
		{"NegativeInterval", lag.Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Interval: -time.Second}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lag.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	m, err := lag.New(lag.Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Window() != lag.DefaultWindow {
		t.Errorf("window %d, want the default %d", m.Window(), lag.DefaultWindow)
	}
}

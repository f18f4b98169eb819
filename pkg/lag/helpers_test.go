package lag_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/lag"
)

// clock is the monitor's clock in tests: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a fresh topic on the test broker, the records' timestamps and a clock.
type fixture struct {
	brokers []string
	topic   string
	client  *kafka.Client
	// base is the timestamp the records' timestamps count from: an hour before the test.
	base  time.Time
	clock *clock
}

func newFixture(tb testing.TB, partitions int) *fixture {
	tb.Helper()
	brokers := testenv.KafkaBrokers(tb)
	now := time.UnixMilli(time.Now().UnixMilli())
	return &fixture{
		brokers: brokers,
		topic:   testenv.Topic(tb, partitions),
		client:  &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second},
		base:    now.Add(-time.Hour),
		clock:   &clock{t: now},
	}
}

// at is the timestamp s seconds after the fixture's base.
func (f *fixture) at(s int) time.Time { return f.base.Add(time.Duration(s) * time.Second) }

// produce appends records with the timestamps base+s seconds for each s to the partition.
func (f *fixture) produce(tb testing.TB, partition int, seconds ...int) {
	tb.Helper()
	// A new topic's partitions take a moment to get a leader: retry until they have one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var records []kafka.Record // built for each attempt: a produce request consumes its records
		for _, s := range seconds {
			records = append(records, kafka.Record{Time: f.at(s), Value: kafka.NewBytes(fmt.Appendf(nil, "p%d-t%d", partition, s))})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := f.client.Produce(ctx, &kafka.ProduceRequest{
			Topic: f.topic, Partition: partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(records...),
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

// commit commits the offsets (partition -> offset) for group as an administrator does:
// generation -1 and no member, which the broker accepts while the group has no members.
func (f *fixture) commit(tb testing.TB, group string, offsets map[int]int64) {
	tb.Helper()
	var commits []kafka.OffsetCommit
	for p, o := range offsets {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: o})
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

// monitor is a Monitor of the fixture's topic on the fixture's clock, with a window of
// window polls, reporting groups (every group reading the topic when none).
func (f *fixture) monitor(tb testing.TB, window int, groups ...string) *lag.Monitor {
	tb.Helper()
	m, err := lag.New(lag.Config{Brokers: f.brokers, Topics: []string{f.topic}, Groups: groups, Window: window, Now: f.clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// poll polls once and returns the group, failing the test when the poll fails or the group
// is not reported.
func poll(tb testing.TB, m *lag.Monitor, group string) lag.Group {
	tb.Helper()
	s, err := m.Poll(context.Background())
	if err != nil {
		tb.Fatalf("poll: %v", err)
	}
	for _, err := range s.Errors {
		tb.Errorf("poll: %v", err)
	}
	g, ok := s.Group(group)
	if !ok {
		tb.Fatalf("group %s is not in the snapshot: %+v", group, s.Groups)
	}
	return g
}

// member starts a live member of group on the fixture's topic that joins and fetches but
// never commits, and waits until the group is Stable with it.
func (f *fixture) member(tb testing.TB, group string) {
	tb.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: f.brokers, GroupID: group, Topic: f.topic,
		MaxWait: 250 * time.Millisecond, HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
		Dialer: &kafka.Dialer{ClientID: "lag-test-member", Timeout: 10 * time.Second, DualStack: true},
	})
	tb.Cleanup(func() { r.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := f.client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == "Stable" && len(resp.Groups[0].Members) == 1 &&
			len(resp.Groups[0].Members[0].MemberAssignments.Topics) > 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("group %s did not become Stable with 1 assigned member within 30s (last: %+v, %v)", group, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package lag_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/lag"
)

func dash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// The monitor's figures are those of Kafka's own kafka-consumer-groups --describe, taken at
// the same moment: nothing is produced or committed between the two.
func TestMonitor_ConsumerGroupCommand(t *testing.T) {
	f := newFixture(t, 3)
	f.produce(t, 0, 0, 1, 2, 3, 4)
	f.produce(t, 1, 0, 1, 2)
	f.produce(t, 2, 0, 1)
	empty, live := f.topic+".empty", f.topic+".live"
	f.commit(t, empty, map[int]int64{0: 2, 1: 3})
	f.commit(t, live, map[int]int64{0: 4})
	f.member(t, live) // assigned every partition; commits nothing

	m := f.monitor(t, 5, empty, live)
	s, err := m.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(f.brokers, ",")
	out := testenv.KafkaTools(t,
		[]string{"consumer.group.ConsumerGroupCommand", "--bootstrap-server", brokers, "--describe", "--group", empty, "--group", live},
		[]string{"consumer.group.ConsumerGroupCommand", "--bootstrap-server", brokers, "--describe", "--state", "--group", empty, "--group", live})
	t.Logf("kafka-consumer-groups --describe:\n%s\nkafka-consumer-groups --describe --state:\n%s", out[0], out[1])
	offsets, states := testenv.ConsumerGroupTables(out[0]), testenv.ConsumerGroupTables(out[1])

	for _, name := range []string{empty, live} {
		g, ok := s.Group(name)
		if !ok {
			t.Fatalf("group %s is not in the snapshot", name)
		}
		var want, got []string
		for _, row := range offsets {
			if row["GROUP"] == name {
				want = append(want, strings.Join([]string{row["TOPIC"], row["PARTITION"], row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"], row["CONSUMER-ID"], row["HOST"], row["CLIENT-ID"]}, " "))
			}
		}
		for _, p := range g.Partitions {
			got = append(got, strings.Join([]string{p.Topic, strconv.Itoa(p.Partition), dash(p.Committed), dash(p.End), dash(p.Lag), orDash(p.MemberID), orDash(p.Host), orDash(p.ClientID)}, " "))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("group %s:\nmonitor                  %q\nkafka-consumer-groups    %q", name, got, want)
		}
		i := slices.IndexFunc(states, func(row map[string]string) bool { return row["GROUP"] == name })
		if i < 0 {
			t.Fatalf("kafka-consumer-groups --state did not describe %s: %v", name, states)
		}
		if st, n := states[i]["STATE"], states[i]["#MEMBERS"]; g.State != st || strconv.Itoa(g.Members) != n {
			t.Errorf("group %s: state %s with %d members, kafka-consumer-groups says %s with %s", name, g.State, g.Members, st, n)
		}
	}
	if g, _ := s.Group(live); g.State != "Stable" || g.Members != 1 {
		t.Errorf("group %s: %s with %d members, want Stable with 1", live, g.State, g.Members)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// A committed offset that holds a transaction marker, as a consumer of a transactional
// producer's records commits it, gets the age of the first record after the marker.
func TestMonitor_TransactionMarker(t *testing.T) {
	f := newFixture(t, 1)
	f.produce(t, 0, 0) // offset 0; the partition has a leader from here on
	testenv.KafkaTools(t, []string{"ProducerPerformance", "--topic", f.topic, "--num-records", "3", "--record-size", "100",
		"--throughput", "-1", "--transactional-id", f.topic + ".tx", "--transaction-duration-ms", "60000",
		"--producer-props", "bootstrap.servers=" + strings.Join(f.brokers, ",")})
	// The coordinator answers the commit once it has decided it and writes the markers after
	// that: wait for the marker before the next record, with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := f.client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{f.topic: {kafka.LastOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		if ps := resp.Topics[f.topic]; len(ps) == 1 && ps[0].LastOffset >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the transaction's commit marker never reached the partition")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.produce(t, 0, 50) // after the transaction's three records and its commit marker

	// The marker is the one offset of the partition without a record.
	var offsets []int64
	resp, err := f.client.Fetch(context.Background(), &kafka.FetchRequest{Topic: f.topic, Partition: 0, Offset: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
	if err != nil || resp.Error != nil {
		t.Fatalf("fetch: %v, %v", err, resp.Error)
	}
	for {
		r, err := resp.Records.ReadRecord()
		if err != nil {
			break
		}
		offsets = append(offsets, r.Offset)
	}
	if want := []int64{0, 1, 2, 3, 5}; !slices.Equal(offsets, want) {
		t.Fatalf("records at offsets %v, want %v (the marker at 4)", offsets, want)
	}
	group := f.topic + ".g"
	f.commit(t, group, map[int]int64{0: 4})
	g := poll(t, f.monitor(t, 5, group), group)
	checkPartitions(t, g.Partitions, []lag.Partition{
		{Topic: f.topic, Partition: 0, Committed: 4, End: 6, Lag: 2, LagSeconds: f.clock.Now().Sub(f.at(50)).Seconds(), Oldest: f.at(50)},
	})
}

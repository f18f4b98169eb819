package lag_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMonitor_Collect(t *testing.T) {
	f := newFixture(t, 2)
	f.produce(t, 0, 0, 10, 20)
	f.produce(t, 1, 0)
	group := f.topic + ".g"
	f.commit(t, group, map[int]int64{0: 1}) // partition 1: no committed offset, left out
	m := f.monitor(t, 5, group)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	// Before the first poll: only the error counter.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP annals_lag_monitor_poll_errors_total Failed lag polls, and parts of polls left out by an error (a topic, a group, a record's timestamp).
# TYPE annals_lag_monitor_poll_errors_total counter
annals_lag_monitor_poll_errors_total 0
`)); err != nil {
		t.Error(err)
	}

	if _, err := m.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The clock is an hour after the records' base: the oldest unconsumed record (at
	// base+10s) is 3590 s old.
	want := fmt.Sprintf(`
# HELP annals_consumer_group_lag Records of the partition the consumer group has not consumed: log-end offset minus committed offset.
# TYPE annals_consumer_group_lag gauge
annals_consumer_group_lag{group="%[1]s",partition="0",topic="%[2]s"} 2
# HELP annals_consumer_group_lag_sum Records of the topic the consumer group has not consumed, over its partitions with a committed offset.
# TYPE annals_consumer_group_lag_sum gauge
annals_consumer_group_lag_sum{group="%[1]s",topic="%[2]s"} 2
# HELP annals_consumer_group_lag_seconds Age of the oldest record of the partition the consumer group has not consumed; 0 when it has consumed every record.
# TYPE annals_consumer_group_lag_seconds gauge
annals_consumer_group_lag_seconds{group="%[1]s",partition="0",topic="%[2]s"} 3590
# HELP annals_consumer_group_max_lag_seconds Age of the oldest record the consumer group has not consumed, over all its partitions.
# TYPE annals_consumer_group_max_lag_seconds gauge
annals_consumer_group_max_lag_seconds{group="%[1]s"} 3590
# HELP annals_consumer_group_members Live members of the consumer group.
# TYPE annals_consumer_group_members gauge
annals_consumer_group_members{group="%[1]s"} 0
# HELP annals_consumer_group_state The consumer group's state as the broker describes it: 1 for the current state.
# TYPE annals_consumer_group_state gauge
annals_consumer_group_state{group="%[1]s",state="Empty"} 1
# HELP annals_consumer_group_status The consumer group's health over the window of polls (ok, unknown, warn, stall, stop): 1 for the current status, 0 for the others.
# TYPE annals_consumer_group_status gauge
annals_consumer_group_status{group="%[1]s",status="ok"} 0
annals_consumer_group_status{group="%[1]s",status="stall"} 0
annals_consumer_group_status{group="%[1]s",status="stop"} 0
annals_consumer_group_status{group="%[1]s",status="unknown"} 1
annals_consumer_group_status{group="%[1]s",status="warn"} 0
# HELP annals_consumer_group_committed_offset The consumer group's committed offset on the partition: the offset of the next record it will consume.
# TYPE annals_consumer_group_committed_offset gauge
annals_consumer_group_committed_offset{group="%[1]s",partition="0",topic="%[2]s"} 1
# HELP annals_topic_partition_end_offset Log-end offset of the partition: the offset the next record appended will get.
# TYPE annals_topic_partition_end_offset gauge
annals_topic_partition_end_offset{partition="0",topic="%[2]s"} 3
annals_topic_partition_end_offset{partition="1",topic="%[2]s"} 1
# HELP annals_lag_monitor_poll_errors_total Failed lag polls, and parts of polls left out by an error (a topic, a group, a record's timestamp).
# TYPE annals_lag_monitor_poll_errors_total counter
annals_lag_monitor_poll_errors_total 0
# HELP kafka_consumergroup_lag Current Approximate Lag of a ConsumerGroup at Topic/Partition
# TYPE kafka_consumergroup_lag gauge
kafka_consumergroup_lag{consumergroup="%[1]s",partition="0",topic="%[2]s"} 2
# HELP kafka_consumergroup_lag_sum Current Approximate Lag of a ConsumerGroup at Topic for all partitions
# TYPE kafka_consumergroup_lag_sum gauge
kafka_consumergroup_lag_sum{consumergroup="%[1]s",topic="%[2]s"} 2
# HELP kafka_consumergroup_current_offset Current Offset of a ConsumerGroup at Topic/Partition
# TYPE kafka_consumergroup_current_offset gauge
kafka_consumergroup_current_offset{consumergroup="%[1]s",partition="0",topic="%[2]s"} 1
# HELP kafka_consumergroup_current_offset_sum Current Offset of a ConsumerGroup at Topic for all partitions
# TYPE kafka_consumergroup_current_offset_sum gauge
kafka_consumergroup_current_offset_sum{consumergroup="%[1]s",topic="%[2]s"} 1
# HELP kafka_consumergroup_members Amount of members in a consumer group
# TYPE kafka_consumergroup_members gauge
kafka_consumergroup_members{consumergroup="%[1]s"} 0
# HELP kafka_topic_partition_current_offset Current Offset of a Broker at Topic/Partition
# TYPE kafka_topic_partition_current_offset gauge
kafka_topic_partition_current_offset{partition="0",topic="%[2]s"} 3
kafka_topic_partition_current_offset{partition="1",topic="%[2]s"} 1
# HELP kafka_topic_partitions Number of partitions for this Topic
# TYPE kafka_topic_partitions gauge
kafka_topic_partitions{topic="%[2]s"} 2
`, group, f.topic)
	names := []string{
		"annals_consumer_group_lag", "annals_consumer_group_lag_sum", "annals_consumer_group_lag_seconds",
		"annals_consumer_group_max_lag_seconds", "annals_consumer_group_members", "annals_consumer_group_state",
		"annals_consumer_group_status", "annals_consumer_group_committed_offset", "annals_topic_partition_end_offset",
		"annals_lag_monitor_poll_errors_total",
		"kafka_consumergroup_lag", "kafka_consumergroup_lag_sum", "kafka_consumergroup_current_offset",
		"kafka_consumergroup_current_offset_sum", "kafka_consumergroup_members", "kafka_topic_partition_current_offset",
		"kafka_topic_partitions",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for _, mf := range families {
		if mf.GetName() == "annals_lag_monitor_last_poll_timestamp_seconds" {
			last = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if want := float64(f.clock.Now().UnixNano()) / 1e9; last != want {
		t.Errorf("last poll timestamp %v, want %v", last, want)
	}

	// The only lint: gauges named *_sum, which the names asked for (and kafka_exporter's)
	// carry.
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !strings.HasSuffix(p.Metric, "_sum") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

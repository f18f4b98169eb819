// Package lag measures how far Kafka consumer groups are behind on a set of topics, from the
// broker's own records: each group's committed offsets, each partition's log-end offset, and
// the timestamp of the oldest record a group has not consumed yet. Because nothing comes from
// the consumers themselves, a group whose consumers have all died still shows its lag, and
// its lag in seconds, which is exactly when it matters.
//
// A Monitor polls the broker every interval (10 s by default), keeps the latest Snapshot,
// judges each group's health over a sliding window of polls, and is a prometheus.Collector:
// register it on a registry and run it.
//
//	mon, err := lag.New(lag.Config{Brokers: brokers, Topics: []string{"annals.user", "annals.order"}})
//	if err != nil { ... }
//	reg.MustRegister(mon)
//	go mon.Run(ctx)
//
// # What is measured
//
// Groups: with Config.Groups empty, every group the brokers list (ListGroups; consumer groups
// and groups with no protocol, such as those whose offsets an administrator committed) that
// has a committed offset on, or a member assigned to, a partition of the topics. With
// Config.Groups set, those groups only, each reported even when it has neither. A group with
// no live member is reported as long as the broker keeps its committed offsets.
//
// Partitions of a group: those of the topics on which the group has a committed offset or a
// member assigned, as kafka-consumer-groups --describe lists them.
//
// Lag of a partition: log-end offset minus committed offset (never below 0); unknown (-1)
// without a committed offset, since where such a group would start depends on its
// consumers' configuration. Sums per group and topic add the known lags.
//
// Lag in seconds: the age of the oldest record the group has not consumed, that is the time
// of the poll minus the timestamp of the record at the committed offset (the first record
// after it when that offset holds no record, the first retained record when retention has
// deleted it); 0 when the lag is 0; unknown (-1) when the record cannot be read. The
// timestamp comes from a fetch of one byte, which the broker answers with the one record
// batch holding the offset, whatever the backlog behind it; the records read are handed back
// to kafka-go at once, so the monitor's memory does not grow with the groups' lag. It is
// remembered by (topic, partition, offset), so a group that stands still costs no fetch after
// the first poll.
//
// # Status
//
// Like Burrow, a group's status is judged per partition over a window of the last Window
// polls (10 by default, so 100 s at the default interval), and the group takes the worst:
//
//   - ok: the partition's lag is 0 in the latest poll (this needs no history), or it was 0
//     in some poll of the window, or none of the rules below holds (the committed offset
//     moves and the lag does not keep rising: the consumers keep pace).
//   - warn: the committed offset moved during the window, but the lag never fell from one
//     poll to the next and ended higher than it began: the group is falling behind.
//   - stall: the committed offset stood still through the whole window while the lag was
//     above 0 in every poll, and the group has live members: consumers are present but not
//     committing (stuck on a record, a blocked lane, a rebalance loop).
//   - stop: the same standing still with lag, and the group has no live member: nobody is
//     consuming at all.
//   - unknown: the partition lags but the window is not full yet (after the monitor starts,
//     or after the partition first got a committed offset); also a group with no committed
//     offset on the topics and no member. Alerting rules see no stall or stop until a full
//     window supports it.
//
// Live members are those of the latest poll. The severity order is
// ok < unknown < warn < stall < stop. A failed poll adds no sample, so the window spans more
// time while the brokers do not answer.
//
// # Metrics
//
// Per group, topic and partition: annals_consumer_group_lag, annals_consumer_group_lag_seconds,
// annals_consumer_group_committed_offset; per group and topic annals_consumer_group_lag_sum;
// per group annals_consumer_group_max_lag_seconds, annals_consumer_group_members,
// annals_consumer_group_state{state} (1 for the current state) and
// annals_consumer_group_status{status} (every status, 1 for the current one, 0 for the
// others); per partition annals_topic_partition_end_offset; and the monitor's own
// annals_lag_monitor_poll_errors_total and annals_lag_monitor_last_poll_timestamp_seconds
// (alert when it falls behind time(): the figures above are those of the last successful
// poll).
//
// The same figures also go out under the names of danielqsj/kafka_exporter, so that its
// Grafana dashboard (7589, "Kafka Exporter Overview") and alert rules work unchanged:
// kafka_consumergroup_lag, kafka_consumergroup_lag_sum, kafka_consumergroup_current_offset,
// kafka_consumergroup_current_offset_sum, kafka_consumergroup_members,
// kafka_topic_partition_current_offset and kafka_topic_partitions. One difference: a
// partition without a committed offset is left out, where kafka_exporter reports it with
// offset and lag -1 (which lowers every sum a dashboard draws).
//
// This package only reads: it never commits an offset, joins a group or writes a record.
package lag

package lag

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descLag = prometheus.NewDesc("annals_consumer_group_lag",
		"Records of the partition the consumer group has not consumed: log-end offset minus committed offset.",
		[]string{"group", "topic", "partition"}, nil)
	descLagSum = prometheus.NewDesc("annals_consumer_group_lag_sum",
		"Records of the topic the consumer group has not consumed, over its partitions with a committed offset.",
		[]string{"group", "topic"}, nil)
	descLagSeconds = prometheus.NewDesc("annals_consumer_group_lag_seconds",
		"Age of the oldest record of the partition the consumer group has not consumed; 0 when it has consumed every record.",
		[]string{"group", "topic", "partition"}, nil)
	descMaxLagSeconds = prometheus.NewDesc("annals_consumer_group_max_lag_seconds",
		"Age of the oldest record the consumer group has not consumed, over all its partitions.",
		[]string{"group"}, nil)
	descMembers = prometheus.NewDesc("annals_consumer_group_members",
		"Live members of the consumer group.",
		[]string{"group"}, nil)
	descState = prometheus.NewDesc("annals_consumer_group_state",
		"The consumer group's state as the broker describes it: 1 for the current state.",
		[]string{"group", "state"}, nil)
	descStatus = prometheus.NewDesc("annals_consumer_group_status",
		"The consumer group's health over the window of polls (ok, unknown, warn, stall, stop): 1 for the current status, 0 for the others.",
		[]string{"group", "status"}, nil)
	descCommitted = prometheus.NewDesc("annals_consumer_group_committed_offset",
		"The consumer group's committed offset on the partition: the offset of the next record it will consume.",
		[]string{"group", "topic", "partition"}, nil)
	descEnd = prometheus.NewDesc("annals_topic_partition_end_offset",
		"Log-end offset of the partition: the offset the next record appended will get.",
		[]string{"topic", "partition"}, nil)
	descPollErrors = prometheus.NewDesc("annals_lag_monitor_poll_errors_total",
		"Failed lag polls, and parts of polls left out by an error (a topic, a group, a record's timestamp).",
		nil, nil)
	descLastPoll = prometheus.NewDesc("annals_lag_monitor_last_poll_timestamp_seconds",
		"Time of the last successful lag poll, whose figures the other metrics show.",
		nil, nil)

	// The names, labels and help texts of danielqsj/kafka_exporter.
	compatLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"Current Approximate Lag of a ConsumerGroup at Topic/Partition",
		[]string{"consumergroup", "topic", "partition"}, nil)
	compatLagSum = prometheus.NewDesc("kafka_consumergroup_lag_sum",
		"Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
		[]string{"consumergroup", "topic"}, nil)
	compatCurrentOffset = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"Current Offset of a ConsumerGroup at Topic/Partition",
		[]string{"consumergroup", "topic", "partition"}, nil)
	compatCurrentOffsetSum = prometheus.NewDesc("kafka_consumergroup_current_offset_sum",
		"Current Offset of a ConsumerGroup at Topic for all partitions",
		[]string{"consumergroup", "topic"}, nil)
	compatMembers = prometheus.NewDesc("kafka_consumergroup_members",
		"Amount of members in a consumer group",
		[]string{"consumergroup"}, nil)
	compatTopicOffset = prometheus.NewDesc("kafka_topic_partition_current_offset",
		"Current Offset of a Broker at Topic/Partition",
		[]string{"topic", "partition"}, nil)
	compatTopicPartitions = prometheus.NewDesc("kafka_topic_partitions",
		"Number of partitions for this Topic",
		[]string{"topic"}, nil)
)

var _ prometheus.Collector = (*Monitor)(nil)

// Describe implements prometheus.Collector.
func (m *Monitor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descLag, descLagSum, descLagSeconds, descMaxLagSeconds, descMembers, descState, descStatus,
		descCommitted, descEnd, descPollErrors, descLastPoll,
		compatLag, compatLagSum, compatCurrentOffset, compatCurrentOffsetSum, compatMembers,
		compatTopicOffset, compatTopicPartitions,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the figures of the latest snapshot.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ch <- prometheus.MustNewConstMetric(descPollErrors, prometheus.CounterValue, float64(m.errors.Load()))
	s := m.Snapshot()
	if s == nil {
		return
	}
	gauge(descLastPoll, float64(m.lastPoll.Load())/1e9)

	partitions := map[string]int{}
	var topics []string
	for _, tp := range s.Topics {
		p := strconv.Itoa(tp.Partition)
		gauge(descEnd, float64(tp.End), tp.Topic, p)
		gauge(compatTopicOffset, float64(tp.End), tp.Topic, p)
		if partitions[tp.Topic] == 0 {
			topics = append(topics, tp.Topic)
		}
		partitions[tp.Topic]++
	}
	for _, t := range topics {
		gauge(compatTopicPartitions, float64(partitions[t]), t)
	}

	for _, g := range s.Groups {
		gauge(descMembers, float64(g.Members), g.Name)
		gauge(compatMembers, float64(g.Members), g.Name)
		gauge(descState, 1, g.Name, g.State)
		for _, st := range Statuses() {
			v := 0.0
			if st == g.Status {
				v = 1
			}
			gauge(descStatus, v, g.Name, string(st))
		}
		if v := g.MaxLagSeconds(); v >= 0 {
			gauge(descMaxLagSeconds, v, g.Name)
		}

		type sums struct{ lag, offset int64 }
		perTopic := map[string]*sums{}
		var order []string
		for _, p := range g.Partitions {
			if p.Committed < 0 {
				continue
			}
			part := strconv.Itoa(p.Partition)
			gauge(descLag, float64(p.Lag), g.Name, p.Topic, part)
			gauge(compatLag, float64(p.Lag), g.Name, p.Topic, part)
			gauge(descCommitted, float64(p.Committed), g.Name, p.Topic, part)
			gauge(compatCurrentOffset, float64(p.Committed), g.Name, p.Topic, part)
			if p.LagSeconds >= 0 {
				gauge(descLagSeconds, p.LagSeconds, g.Name, p.Topic, part)
			}
			t := perTopic[p.Topic]
			if t == nil {
				t = &sums{}
				perTopic[p.Topic] = t
				order = append(order, p.Topic)
			}
			t.lag += p.Lag
			t.offset += p.Committed
		}
		for _, topic := range order {
			gauge(descLagSum, float64(perTopic[topic].lag), g.Name, topic)
			gauge(compatLagSum, float64(perTopic[topic].lag), g.Name, topic)
			gauge(compatCurrentOffsetSum, float64(perTopic[topic].offset), g.Name, topic)
		}
	}
}

package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Topic is a topic to ensure.
type Topic struct {
	Name              string
	Partitions        int
	ReplicationFactor int
}

// EnsureTopics creates the topics that do not exist and checks those that do: an existing
// topic is never recreated, and one with another partition count is reported (changing it
// would move keys between partitions). It writes one line per topic to out. It connects in
// plaintext; EnsureTopicsWith takes the brokers' security.
func EnsureTopics(ctx context.Context, brokers []string, topics []Topic, out io.Writer) error {
	return EnsureTopicsWith(ctx, brokers, kafkasec.Security{}, topics, out)
}

// EnsureTopicsWith is EnsureTopics with the brokers' security. A broker that refuses it, or
// whose ACLs do not let it describe or create a topic, is a *kafkasec.Error naming what is
// missing.
func EnsureTopicsWith(ctx context.Context, brokers []string, sec kafkasec.Security, topics []Topic, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	transport, release, err := sec.RoundTripper()
	if err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	defer release()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second, Transport: transport}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("topics: metadata from %v: %w", brokers, kafkasec.Classify(err, sec))
	}
	existing := map[string]int{}
	for _, t := range meta.Topics {
		switch {
		case t.Error == nil:
			existing[t.Name] = len(t.Partitions)
		case kafkasec.IsAuthorization(t.Error):
			return fmt.Errorf("topics: %w", kafkasec.Denied(t.Error, kafkasec.Access{Operation: "Describe", Topic: t.Name}, sec))
		}
	}
	var create []kafka.TopicConfig
	for _, t := range topics {
		n, ok := existing[t.Name]
		switch {
		case !ok:
			create = append(create, kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor})
		case n != t.Partitions:
			fmt.Fprintf(out, "exists  %s with %d partitions (configured %d; left as it is)\n", t.Name, n, t.Partitions)
		default:
			fmt.Fprintf(out, "exists  %s\n", t.Name)
		}
	}
	if len(create) == 0 {
		return nil
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
	if err != nil {
		return fmt.Errorf("topics: create: %w", kafkasec.Classify(kafkasec.Denied(err, kafkasec.Access{Operation: "Create", Topic: create[0].Topic}, sec), sec))
	}
	var errs []error
	for _, t := range create {
		switch err := resp.Errors[t.Topic]; {
		case err == nil:
			fmt.Fprintf(out, "created %s (%d partitions, replication factor %d)\n", t.Topic, t.NumPartitions, t.ReplicationFactor)
		case errors.Is(err, kafka.TopicAlreadyExists): // created concurrently
			fmt.Fprintf(out, "exists  %s\n", t.Topic)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", t.Topic, kafkasec.Denied(err, kafkasec.Access{Operation: "Create", Topic: t.Topic}, sec)))
		}
	}
	return errors.Join(errs...)
}

// topicInfo is what the relay knows of a topic it publishes to.
type topicInfo struct {
	partitions []int // partition ids, sorted
	// maxMessageBytes is the topic's max.message.bytes (0: not read yet), read at limitReadAt.
	maxMessageBytes int
	limitReadAt     time.Time
}

// Kafka's default max.message.bytes (message.max.bytes), assumed when the broker does not say;
// batchOverhead is a record batch's header, which the limit counts with the records.
const (
	defaultMaxMessageBytes = 1048588
	batchOverhead          = 61
	// limitTTL is how long a topic's limit is trusted before it is read again.
	limitTTL = time.Minute
)

type partitionKey struct {
	topic     string
	partition int
}

// partitionOf is the partition the writer's murmur2 balancer puts a key in. The first call
// for a topic reads its partitions and its size limit.
func (r *Relay) partitionOf(ctx context.Context, topic, key string) (partitionKey, error) {
	t, err := r.topic(ctx, topic)
	if err != nil {
		return partitionKey{}, err
	}
	return partitionKey{topic, r.balancer.Balance(kafka.Message{Key: []byte(key)}, t.partitions...)}, nil
}

// topic returns what the relay knows of a topic, reading its partitions when it knows none and
// its size limit when that is unknown or older than limitTTL.
func (r *Relay) topic(ctx context.Context, topic string) (*topicInfo, error) {
	t, ok := r.topics[topic]
	if !ok {
		meta, err := r.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, r.refusal(err, "Describe", topic))
		}
		t = &topicInfo{}
		for _, mt := range meta.Topics {
			if mt.Error != nil {
				return nil, fmt.Errorf("metadata of %s: %w", topic, r.refusal(mt.Error, "Describe", topic))
			}
			for _, p := range mt.Partitions {
				t.partitions = append(t.partitions, p.ID)
			}
		}
		if len(t.partitions) == 0 {
			return nil, fmt.Errorf("topic %s has no partitions", topic)
		}
		slices.Sort(t.partitions)
		r.topics[topic] = t
	}
	if t.maxMessageBytes == 0 || time.Since(t.limitReadAt) > limitTTL {
		r.readLimit(ctx, topic)
	}
	return t, nil
}

// readLimit reads a known topic's max.message.bytes from the broker. When the broker does not
// say (the request fails, or the relay may not describe the topic), it keeps the limit it
// knew, or assumes Kafka's default, and tries again after limitTTL.
func (r *Relay) readLimit(ctx context.Context, topic string) {
	t, ok := r.topics[topic]
	if !ok {
		return
	}
	limit, err := r.describeLimit(ctx, topic)
	t.limitReadAt = time.Now()
	switch {
	case err == nil:
		if t.maxMessageBytes != 0 && t.maxMessageBytes != limit {
			r.log.Info("relay: a topic's size limit changed", "topic", topic, "max_message_bytes", limit, "was", t.maxMessageBytes)
		}
		t.maxMessageBytes = limit
	case t.maxMessageBytes == 0:
		t.maxMessageBytes = defaultMaxMessageBytes
		r.log.Warn("relay: cannot read a topic's max.message.bytes; assuming Kafka's default", "topic", topic,
			"max_message_bytes", t.maxMessageBytes, "error", err)
	default:
		r.log.Debug("relay: cannot read a topic's max.message.bytes again; keeping the last known", "topic", topic, "error", err)
	}
}

func (r *Relay) describeLimit(ctx context.Context, topic string) (int, error) {
	res, err := r.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"max.message.bytes"},
	}}})
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", topic, err)
	}
	for _, res := range res.Resources {
		if res.Error != nil {
			return 0, fmt.Errorf("describe %s: %w", topic, res.Error)
		}
		for _, c := range res.ConfigEntries {
			if c.ConfigName == "max.message.bytes" {
				n, err := strconv.Atoi(c.ConfigValue)
				if err != nil || n <= batchOverhead {
					return 0, fmt.Errorf("describe %s: max.message.bytes %q", topic, c.ConfigValue)
				}
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("describe %s: no max.message.bytes", topic)
}

// recordLimit is the most bytes one produce batch to the topic may take: the topic's
// max.message.bytes, or less with Config.MaxRecordBytes.
func (r *Relay) recordLimit(topic string) int {
	limit := defaultMaxMessageBytes
	if t, ok := r.topics[topic]; ok && t.maxMessageBytes > 0 {
		limit = t.maxMessageBytes
	}
	if r.cfg.MaxRecordBytes > 0 {
		limit = min(limit, r.cfg.MaxRecordBytes)
	}
	return limit
}

// batchBudget is the most record bytes of one partition's share of a publish to the topic.
func (r *Relay) batchBudget(topic string) int {
	return min(r.cfg.MaxBatchBytes, r.recordLimit(topic)-batchOverhead)
}

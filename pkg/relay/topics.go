package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic is a topic to ensure.
type Topic struct {
	Name              string
	Partitions        int
	ReplicationFactor int
}

// EnsureTopics creates the topics that do not exist and checks those that do: an existing
// topic is never recreated, and one with another partition count is reported (changing it
// would move keys between partitions). It writes one line per topic to out.
func EnsureTopics(ctx context.Context, brokers []string, topics []Topic, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("topics: metadata from %v: %w", brokers, err)
	}
	existing := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			existing[t.Name] = len(t.Partitions)
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
		return fmt.Errorf("topics: create: %w", err)
	}
	var errs []error
	for _, t := range create {
		switch err := resp.Errors[t.Topic]; {
		case err == nil:
			fmt.Fprintf(out, "created %s (%d partitions, replication factor %d)\n", t.Topic, t.NumPartitions, t.ReplicationFactor)
		case errors.Is(err, kafka.TopicAlreadyExists): // created concurrently
			fmt.Fprintf(out, "exists  %s\n", t.Topic)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
)

// Categories are the aggregate types whose events get a topic each.
var Categories = []string{"user", "order"}

// ConsumerGroups are the groups whose dead letters get a topic each.
var ConsumerGroups = []string{"annals-projector", "annals-notifier", "annals-auditor"}

func topicsCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: topics takes no arguments", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	return CreateTopics(ctx, cfg, stdout)
}

// CreateTopics creates every event topic and dead-letter topic that does not exist yet, and
// reports which were created and which were already there.
func CreateTopics(ctx context.Context, cfg *config.Config, out io.Writer) error {
	var topics []kafka.TopicConfig
	for _, c := range Categories {
		topics = append(topics, kafka.TopicConfig{
			Topic:             cfg.TopicName(c),
			NumPartitions:     cfg.Kafka.TopicPartitions,
			ReplicationFactor: cfg.Kafka.ReplicationFactor,
		})
	}
	for _, g := range ConsumerGroups {
		topics = append(topics, kafka.TopicConfig{
			Topic:             cfg.DLQTopic(g),
			NumPartitions:     cfg.Kafka.TopicPartitions,
			ReplicationFactor: cfg.Kafka.ReplicationFactor,
		})
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Timeout: 30 * time.Second}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", cfg.Kafka.Brokers, err)
	}
	var errs []error
	for _, t := range topics {
		switch err := resp.Errors[t.Topic]; {
		case err == nil:
			fmt.Fprintf(out, "created %s (%d partitions, replication factor %d)\n", t.Topic, t.NumPartitions, t.ReplicationFactor)
		case errors.Is(err, kafka.TopicAlreadyExists):
			fmt.Fprintf(out, "exists  %s\n", t.Topic)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/relay"
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
	return relay.EnsureTopics(ctx, cfg.Kafka.Brokers, Topics(cfg), out)
}

// Topics are the event topics and dead-letter topics of a deployment.
func Topics(cfg *config.Config) []relay.Topic {
	var topics []relay.Topic
	for _, c := range Categories {
		topics = append(topics, relay.Topic{Name: cfg.TopicName(c), Partitions: cfg.Kafka.TopicPartitions, ReplicationFactor: cfg.Kafka.ReplicationFactor})
	}
	for _, g := range ConsumerGroups {
		topics = append(topics, relay.Topic{Name: cfg.DLQTopic(g), Partitions: cfg.Kafka.TopicPartitions, ReplicationFactor: cfg.Kafka.ReplicationFactor})
	}
	return topics
}

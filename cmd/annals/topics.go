package main

import (
	"context"
	"fmt"
	"io"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/relay"
)

func topicsCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: topics takes no arguments", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if err := app.CheckKafka(ctx, cfg.Kafka, nil); err != nil {
		return err
	}
	return CreateTopics(ctx, cfg, stdout)
}

// CreateTopics creates every event topic and dead-letter topic that does not exist yet, and
// reports which were created and which were already there.
func CreateTopics(ctx context.Context, cfg *config.Config, out io.Writer) error {
	return relay.EnsureTopicsWith(ctx, cfg.Kafka.Brokers, cfg.Kafka.Security(), wiring.Topics(cfg), out)
}

// Command bankd is the bank example's service: an HTTP API that opens accounts, takes deposits
// and withdrawals and closes accounts as events in PostgreSQL, the relay that publishes them to
// Kafka, and the consumer group that keeps a balances read model, all built on the public
// library (pkg/...) alone.
//
// Usage:
//
//	bankd [-addr 127.0.0.1:8090] [-database-url URL] [-schema bank] [-brokers host:port,...] [-topic-prefix bank] [-group name]
//
// Flags beat the environment (HTTP_ADDR, DATABASE_URL, DATABASE_SCHEMA, KAFKA_BROKERS,
// KAFKA_TOPIC_PREFIX, KAFKA_TOPIC_PARTITIONS, KAFKA_REPLICATION_FACTOR), which beats the
// defaults of the stack `make up` starts. It logs JSON to standard error and stops cleanly on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/annals-dev/annals/examples/bank/service"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		log.Error("bankd: " + err.Error())
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	cfg, err := service.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("bankd", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := service.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.Wait()
}

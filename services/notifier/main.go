// Command annals-notifier consumes the event topics in the annals-notifier group and sends email over SMTP, keeping a sent log keyed by event id so that a redelivered event is not mailed twice.
//
// Usage:
//
//	annals-notifier [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/annals-dev/annals/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Start(ctx, app.Notifier, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "annals-notifier: %v\n", err)
		os.Exit(1)
	}
}

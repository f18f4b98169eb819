// Command annals-projector consumes the event topics in the annals-projector group and builds the user and order read models in PostgreSQL, served by its query API.
//
// Usage:
//
//	annals-projector [-config file] [-addr host:port]
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
	if err := app.Start(ctx, app.Projector, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "annals-projector: %v\n", err)
		os.Exit(1)
	}
}

// Command annals-auditor consumes the event topics in the annals-auditor group and keeps a hash-chained, tamper-evident audit log with a query and verify API.
//
// Usage:
//
//	annals-auditor [-config file] [-addr host:port]
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
	if err := app.Start(ctx, app.Auditor, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "annals-auditor: %v\n", err)
		os.Exit(1)
	}
}

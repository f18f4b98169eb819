// Command annals-notifier consumes the event topics in the annals-notifier group and sends email over SMTP, keeping a sent log keyed by event id so that a redelivered event is not mailed twice.
//
// Usage:
//
//	annals-notifier [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import "github.com/annals-dev/annals/internal/app"

func main() { app.RunProgram(app.Notifier) }

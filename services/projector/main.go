// Command annals-projector consumes the event topics in the annals-projector group and builds the user and order read models in PostgreSQL, served by its query API.
//
// Usage:
//
//	annals-projector [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import "github.com/annals-dev/annals/internal/app"

func main() { app.RunProgram(app.Projector) }

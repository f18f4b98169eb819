// Command annals-auditor consumes the event topics in the annals-auditor group and keeps a hash-chained, tamper-evident audit log with a query and verify API.
//
// Usage:
//
//	annals-auditor [-config file] [-addr host:port]
//
// Configuration comes from config/event_sourcing.tsk and the environment (see the README).
// It serves /livez, /readyz, /metrics and /openapi.json, and stops cleanly on SIGINT or SIGTERM.
package main

import "github.com/annals-dev/annals/internal/app"

func main() { app.RunProgram(app.Auditor) }

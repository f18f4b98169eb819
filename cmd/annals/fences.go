package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

const fencesUsage = `usage: annals fences <subcommand>

An append's transaction holds a fence until it ends, and the all-stream (GET /v1/events,
GET /v1/subscribe) stops below the lowest fence, so that no reader skips an append that
commits late. An append left open (a session idle in its transaction) holds the all-stream for
as long as it stays open (annals_store_all_stream_held_seconds, alert AnnalsAllStreamHeld);
the relay is not held.

subcommands:
  list [-json]    list the open appends: their PostgreSQL backend, the position the
                  all-stream stops at, their state, application and how long they have been open
  end PID         end the session of backend PID (pg_terminate_backend), which must hold a
                  fence: its transaction rolls back, its appends with it, and the all-stream
                  moves on
`

// fencesCmd runs the operator's commands on the appends that hold the all-stream.
func fencesCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: fences needs a subcommand\n\n%s", errUsage, fencesUsage)
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("annals fences "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var run func(s *postgres.Store) error
	switch sub {
	case "list":
		asJSON := fs.Bool("json", false, "print the open appends as JSON")
		if _, err := parseInterleaved(fs, rest, 0, 0); err != nil {
			return fmt.Errorf("%w: fences list takes only -json: %v", errUsage, err)
		}
		run = func(s *postgres.Store) error { return fencesList(ctx, s, *asJSON, stdout) }
	case "end":
		pids, err := parseInterleaved(fs, rest, 1, 1)
		if err != nil {
			return fmt.Errorf("%w: fences end takes one backend PID, from `annals fences list`", errUsage)
		}
		pid, err := strconv.ParseInt(pids[0], 10, 32)
		if err != nil || pid <= 0 {
			return fmt.Errorf("%w: fences end: %q is not a backend PID", errUsage, pids[0])
		}
		run = func(s *postgres.Store) error { return fencesEnd(ctx, s, int32(pid), stdout) }
	case "help", "-h", "--help":
		fmt.Fprint(stdout, fencesUsage)
		return nil
	default:
		return fmt.Errorf("%w: unknown fences subcommand %q\n\n%s", errUsage, sub, fencesUsage)
	}
	_, pool, err := openDatabase(ctx, loadConfig, "annals-fences")
	if err != nil {
		return err
	}
	defer pool.Close()
	return run(postgres.New(pool, postgres.Options{}))
}

func fencesList(ctx context.Context, s *postgres.Store, asJSON bool, stdout io.Writer) error {
	fs, err := s.Fences(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if fs == nil {
			fs = []postgres.Fence{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(fs)
	}
	if len(fs) == 0 {
		fmt.Fprintln(stdout, "no append is open")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tHOLDS ABOVE POSITION\tSTATE\tAPPLICATION\tOPEN FOR")
	for _, f := range fs {
		open := "?"
		if !f.Since.IsZero() {
			open = now.Sub(f.Since).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", f.PID, f.Floor, f.State, f.Application, open)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d open appends. End one where it was opened, or with `annals fences end PID` (its transaction rolls back).\n", len(fs))
	return nil
}

func fencesEnd(ctx context.Context, s *postgres.Store, pid int32, stdout io.Writer) error {
	if err := s.EndFence(ctx, pid); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ended backend %d: its transaction rolled back, and the all-stream goes on past it\n", pid)
	return nil
}

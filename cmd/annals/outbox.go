package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events/outbox"
)

const outboxUsage = `usage: annals outbox <subcommand>

The relay holds a stream whose append it cannot publish (an event type without a schema, a
record over the topic's max.message.bytes, a record the broker refuses): the append and the
stream's later appends wait in the outbox, and every other stream flows
(annals_relay_held_streams, alert AnnalsRelayStreamHeld).

subcommands:
  holds [-json]                     list the held streams: the held append's versions, since
                                    when, how many of the stream's appends wait, and why
  retry STREAM... | -all            release the holds once the cause is fixed (the schema
                                    deployed, the topic's limit raised): the relay tries the
                                    held append again, and holds the stream again if it still
                                    cannot publish it
  skip STREAM -version V -reason WHY [-by WHO]
                                    give up on the held append starting at version V for good:
                                    it is moved to annals_outbox_dead with its reason, who
                                    skipped it (default: this user@host) and why, and the
                                    stream's later appends are published; consumers that check
                                    stream versions will see the gap
`

// outboxCmd runs the operator's commands on held streams.
func outboxCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: outbox needs a subcommand\n\n%s", errUsage, outboxUsage)
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("annals outbox "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var run func(o wiring.Holds) error
	skipped := "annals_outbox_dead" // where a skipped append is recorded, by store
	switch sub {
	case "holds":
		asJSON := fs.Bool("json", false, "print the holds as JSON")
		if _, err := parseInterleaved(fs, rest, 0, 0); err != nil {
			return fmt.Errorf("%w: outbox holds takes only -json: %v", errUsage, err)
		}
		run = func(o wiring.Holds) error { return outboxHolds(ctx, o, *asJSON, stdout) }
	case "retry":
		all := fs.Bool("all", false, "release every hold")
		streams, err := parseInterleaved(fs, rest, 0, -1)
		if err != nil || *all == (len(streams) > 0) {
			return fmt.Errorf("%w: outbox retry takes the held streams, or -all", errUsage)
		}
		run = func(o wiring.Holds) error { return outboxRetry(ctx, o, streams, stdout) }
	case "skip":
		version := fs.Int64("version", -1, "the first version of the held append")
		reason := fs.String("reason", "", "why the append is skipped")
		by := fs.String("by", defaultOperator(), "who skips it")
		streams, err := parseInterleaved(fs, rest, 1, 1)
		if err != nil || *version < 0 || *reason == "" || *by == "" {
			return fmt.Errorf("%w: outbox skip takes one stream, -version V (the held append's first version, from `annals outbox holds`) and -reason WHY", errUsage)
		}
		run = func(o wiring.Holds) error {
			return outboxSkip(ctx, o, skipped, streams[0], *version, *by, *reason, stdout)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, outboxUsage)
		return nil
	default:
		return fmt.Errorf("%w: unknown outbox subcommand %q\n\n%s", errUsage, sub, outboxUsage)
	}
	es, closeStore, err := openEventStore(ctx, loadConfig, "annals-outbox")
	if err != nil {
		return err
	}
	defer closeStore()
	if es.Type != config.StorePostgreSQL {
		skipped = "the " + es.Type + " store's skipped appends"
	}
	return run(es.Holds)
}

// parseInterleaved parses flags that may come before or after the positional arguments, of
// which there must be between least and most (-1: any number).
func parseInterleaved(fs *flag.FlagSet, args []string, least, most int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < least || most >= 0 && len(pos) > most {
		return nil, fmt.Errorf("%d arguments", len(pos))
	}
	return pos, nil
}

// defaultOperator is who runs the command: user@host.
func defaultOperator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return name
	}
	return name + "@" + host
}

func outboxHolds(ctx context.Context, o wiring.Holds, asJSON bool, stdout io.Writer) error {
	holds, err := o.Holds(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		type hold struct {
			StreamID     string    `json:"stream_id"`
			Category     string    `json:"category"`
			FirstVersion int64     `json:"first_version"`
			LastVersion  int64     `json:"last_version"`
			HeldAt       time.Time `json:"held_at"`
			Waiting      int64     `json:"waiting_appends"`
			Reason       string    `json:"reason"`
		}
		out := make([]hold, len(holds))
		for i, h := range holds {
			out[i] = hold{h.StreamID, h.Category, h.FirstVersion, h.LastVersion, h.HeldAt, h.Waiting, h.Reason}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(holds) == 0 {
		fmt.Fprintln(stdout, "no stream is held")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tHELD AT VERSIONS\tSINCE\tWAITING APPENDS\tREASON")
	for _, h := range holds {
		fmt.Fprintf(tw, "%s\t%d..%d\t%s\t%d\t%s\n", h.StreamID, h.FirstVersion, h.LastVersion, h.HeldAt.Format(time.RFC3339), h.Waiting, h.Reason)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d held streams. Fix the cause, then `annals outbox retry STREAM` (or -all); or give up on a held append with `annals outbox skip STREAM -version V -reason WHY`.\n", len(holds))
	return nil
}

func outboxRetry(ctx context.Context, o wiring.Holds, streams []string, stdout io.Writer) error {
	var released []outbox.Hold
	var errs []error
	if len(streams) == 0 {
		holds, err := o.RetryAll(ctx)
		if err != nil {
			return err
		}
		released = holds
	}
	for _, s := range streams {
		h, err := o.Retry(ctx, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		released = append(released, h)
	}
	for _, h := range released {
		fmt.Fprintf(stdout, "released %s (held at %d..%d since %s, %d appends waiting): %s\n",
			h.StreamID, h.FirstVersion, h.LastVersion, h.HeldAt.Format(time.RFC3339), h.Waiting, h.Reason)
	}
	if len(released) > 0 {
		fmt.Fprintln(stdout, "the relay tries them again; `annals outbox holds` shows any it holds again, with the new reason")
	} else if len(errs) == 0 {
		fmt.Fprintln(stdout, "no stream is held")
	}
	return errors.Join(errs...)
}

func outboxSkip(ctx context.Context, o wiring.Holds, skipped, stream string, version int64, by, reason string, stdout io.Writer) error {
	h, err := o.Skip(ctx, stream, version, by, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "skipped %s@%d..%d (held since %s: %s)\nrecorded in %s, skipped by %s: %s\n",
		h.StreamID, h.FirstVersion, h.LastVersion, h.HeldAt.Format(time.RFC3339), h.Reason, skipped, by, reason)
	if behind := h.Waiting - 1; behind > 0 {
		fmt.Fprintf(stdout, "the %d appends behind it are published now\n", behind)
	}
	fmt.Fprintf(stdout, "consumers that check stream versions will see versions %d..%d of %s missing\n", h.FirstVersion, h.LastVersion, h.StreamID)
	return nil
}

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
)

const dlqUsage = `dlq list [--group G] [--stream S] [--limit 20]
  Lists, per consumer group, the streams it has blocked (table annals_consumer_blocks: where,
  since when, why, whether a redrive is requested) and the dead letters in its dead-letter
  topic <prefix>.dlq.<group> (how many, of which streams, and the newest --limit of them with
  their error, original place and attempts). Without --group: every group with a blocked
  stream, and the projector's, notifier's and auditor's.
dlq redrive --group G --stream S [--dry-run] [--wait 2m]
  Once the cause is fixed, asks the running consumers of G to apply the stream's dead-lettered
  and parked events again, in their order, and then to release the stream: the consumer that
  owns the stream's partition does it within its block refresh (5 s), moving the block past
  each event it applies. An event that fails again stays the stream's block, with its new
  reason. Prints the events first; --dry-run stops there. Waits up to --wait for the outcome
  (the request stays if the wait ends first).
dlq release --group G --stream S [--dry-run]
  Releases the stream at once, without applying its dead-lettered and parked events (they stay
  in the dead-letter topic): the running consumers apply its later events again within their
  block refresh.
G is a group name, or projector, notifier or auditor for that service's group.`

// dlqCmd lists, redrives and releases the streams consumer groups have blocked.
func dlqCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dlq needs a subcommand: list, redrive or release", errUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	group := fs.String("group", "", "consumer group, or projector, notifier, auditor")
	stream := fs.String("stream", "", "stream id")
	var limit *int
	var dryRun *bool
	var wait *time.Duration
	switch sub {
	case "list":
		limit = fs.Int("limit", 20, "newest dead letters shown per group")
	case "redrive":
		dryRun = fs.Bool("dry-run", false, "print the events, request nothing")
		wait = fs.Duration("wait", 2*time.Minute, "how long to wait for the outcome")
	case "release":
		dryRun = fs.Bool("dry-run", false, "print what would be released, release nothing")
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "usage: annals "+dlqUsage)
		return nil
	default:
		return fmt.Errorf("%w: unknown dlq subcommand %q (list, redrive, release)", errUsage, sub)
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: annals "+dlqUsage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: dlq %s takes no arguments besides its flags, got %q", errUsage, sub, fs.Args())
	case sub != "list" && (*group == "" || *stream == ""):
		return fmt.Errorf("%w: dlq %s needs --group and --stream", errUsage, sub)
	case limit != nil && *limit < 0:
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	case wait != nil && *wait < 0:
		return fmt.Errorf("%w: --wait must not be negative", errUsage)
	}
	cfg, pool, err := openDatabase(ctx, loadConfig, "annals-dlq")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := app.CheckKafka(ctx, cfg.Kafka, nil); err != nil {
		return err
	}
	d := &dlq{cfg: cfg, blocks: consume.PostgresBlocks(pool), stdout: stdout, stderr: stderr}
	g := d.group(*group)
	switch sub {
	case "list":
		return d.list(ctx, g, *stream, *limit)
	case "redrive":
		return d.redrive(ctx, g, *stream, *dryRun, *wait)
	default:
		return d.release(ctx, g, *stream, *dryRun)
	}
}

type dlq struct {
	cfg            *config.Config
	blocks         *consume.BlockTable
	stdout, stderr io.Writer
}

// group is the consumer group that name stands for: a consuming service's, or name itself.
func (d *dlq) group(name string) string {
	if slices.Contains(wiring.ConsumingServices, name) {
		return d.cfg.ConsumerGroup(name)
	}
	return name
}

// scan reads the group's dead letters (of stream only, when set), reporting its progress on
// stderr while it takes time.
func (d *dlq) scan(ctx context.Context, group, stream string, fn func(consume.DeadLetter) error) error {
	topic := d.cfg.DLQTopic(group)
	return consume.ScanDeadLetters(ctx, consume.DeadLetterScan{
		Brokers: d.cfg.Kafka.Brokers, Security: d.cfg.Kafka.Security(), Topic: topic, StreamID: stream,
		Progress: func(read, total int64) {
			if read > 0 && read < total {
				fmt.Fprintf(d.stderr, "reading %s: %d of %d records\n", topic, read, total)
			}
		},
	}, fn)
}

func (d *dlq) list(ctx context.Context, only, stream string, limit int) error {
	blocked, err := d.blocks.List(ctx, only)
	if err != nil {
		return err
	}
	groups := []string{only}
	if only == "" {
		groups = nil
		for _, s := range wiring.ConsumingServices {
			groups = append(groups, d.cfg.ConsumerGroup(s))
		}
		for _, b := range blocked {
			if !slices.Contains(groups, b.Group) {
				groups = append(groups, b.Group)
			}
		}
	}
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(d.stdout)
		}
		var mine []consume.BlockedStream
		for _, b := range blocked {
			if b.Group == g && (stream == "" || b.StreamID == stream) {
				mine = append(mine, b)
			}
		}
		if err := d.listGroup(ctx, g, stream, mine, limit); err != nil {
			return err
		}
	}
	return nil
}

func (d *dlq) listGroup(ctx context.Context, group, stream string, blocked []consume.BlockedStream, limit int) error {
	topic := d.cfg.DLQTopic(group)
	fmt.Fprintf(d.stdout, "group %s: %d blocked stream(s)\n", group, len(blocked))
	if len(blocked) > 0 {
		tw := tabwriter.NewWriter(d.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tBLOCKED AT\tSINCE\tEVENT\tREDRIVE\tREASON")
		for _, b := range blocked {
			redrive := "-"
			if b.Redrive {
				redrive = "requested"
			}
			fmt.Fprintf(tw, "%s\t%s/%d@%d\t%s\t%s\t%s\t%s\n", b.StreamID, b.Topic, b.Partition, b.Offset,
				b.Since.Format(time.RFC3339), eventID(b.EventID.String()), redrive, oneLine(b.Reason, 100))
		}
		tw.Flush()
	}
	var total, parked int
	streams := map[string]int{}
	var newest []consume.DeadLetter
	err := d.scan(ctx, group, stream, func(l consume.DeadLetter) error {
		total++
		if l.Parked {
			parked++
		}
		streams[l.StreamID]++
		newest = append(newest, l)
		if len(newest) > 2*limit+100 {
			newest = newestFirst(newest, limit)
		}
		return nil
	})
	newest = newestFirst(newest, limit)
	if err != nil {
		fmt.Fprintf(d.stdout, "dead letters in %s: cannot read them: %v\n", topic, err)
		return nil // the blocks above still stand; other groups may be readable
	}
	fmt.Fprintf(d.stdout, "dead letters in %s: %d (%d parked behind an earlier event of their stream) of %d stream(s)\n",
		topic, total, parked, len(streams))
	if len(newest) == 0 {
		return nil
	}
	fmt.Fprintf(d.stdout, "newest %d:\n", len(newest))
	d.letters(newest)
	return nil
}

// newestFirst sorts dead letters newest first and keeps n of them.
func newestFirst(ls []consume.DeadLetter, n int) []consume.DeadLetter {
	slices.SortStableFunc(ls, func(a, b consume.DeadLetter) int { return b.Time.Compare(a.Time) })
	return slices.Clip(ls[:min(n, len(ls))])
}

// letters prints dead letters as a table.
func (d *dlq) letters(ls []consume.DeadLetter) {
	tw := tabwriter.NewWriter(d.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTREAM\tVERSION\tTYPE\tEVENT\tFROM\tATTEMPTS\tERROR")
	for _, l := range ls {
		version := "-"
		if l.StreamVersion >= 0 {
			version = fmt.Sprint(l.StreamVersion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s/%d@%d\t%d\t%s\n", l.Time.UTC().Format(time.RFC3339), cmp.Or(l.StreamID, "(no key)"),
			version, cmp.Or(l.EventType, "-"), eventID(l.EventID), l.OriginalTopic, l.OriginalPartition, l.OriginalOffset,
			l.Attempts, oneLine(l.Error, 100))
	}
	tw.Flush()
}

// dlqPlan is a blocked stream and the events a redrive of it applies, with the reason the
// consumers would refuse the redrive, if any.
type dlqPlan struct {
	block   consume.Block
	parked  []consume.DeadLetter
	refused error
}

// plan prints a blocked stream and the events a redrive of it applies.
func (d *dlq) plan(ctx context.Context, group, stream string) (dlqPlan, error) {
	var p dlqPlan
	b, err := d.blocks.Get(ctx, group, stream)
	if errors.Is(err, consume.ErrNotBlocked) {
		return p, fmt.Errorf("stream %s is not blocked in group %s (annals dlq list shows the blocked streams)", stream, group)
	}
	if err != nil {
		return p, err
	}
	fmt.Fprintf(d.stdout, "stream %s in group %s is blocked at %s/%d@%d since %s: %s\n", stream, group,
		b.Topic, b.Partition, b.Offset, b.Since.Format(time.RFC3339), oneLine(b.Reason, 200))
	var letters []consume.DeadLetter
	if err := d.scan(ctx, group, stream, func(l consume.DeadLetter) error { letters = append(letters, l); return nil }); err != nil {
		return p, err
	}
	p.block = b
	p.parked, p.refused = consume.Parked(letters, b, -1)
	fmt.Fprintf(d.stdout, "%d dead-lettered and parked event(s) of the stream in %s:\n", len(p.parked), d.cfg.DLQTopic(group))
	d.letters(p.parked)
	return p, nil
}

func (d *dlq) redrive(ctx context.Context, group, stream string, dryRun bool, wait time.Duration) error {
	p, err := d.plan(ctx, group, stream)
	if err != nil {
		return err
	}
	if p.block.Stopped {
		return d.releaseStopped(ctx, group, stream, p.block, dryRun) // nothing was dead-lettered: a redrive is its release
	}
	if p.refused != nil {
		return fmt.Errorf("the consumers would refuse to redrive the stream: %w; `annals dlq release` releases it without its parked events", p.refused)
	}
	b, parked := p.block, p.parked
	if dryRun {
		fmt.Fprintln(d.stdout, "dry run: no redrive requested.")
		return nil
	}
	if _, err := d.blocks.RequestRedrive(ctx, group, stream); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "redrive requested: the consumer of %s that owns %s/%d applies these events in order, then releases the stream\n",
		group, b.Topic, b.Partition)
	deadline, last, quiet := time.Now().Add(wait), b.Offset, time.Now()
	for {
		cur, err := d.blocks.Get(ctx, group, stream)
		switch {
		case errors.Is(err, consume.ErrNotBlocked):
			fmt.Fprintf(d.stdout, "done: %d event(s) applied in order; stream %s is released in group %s\n", len(parked), stream, group)
			return nil
		case err != nil:
			return err
		case !cur.Redrive:
			return fmt.Errorf("the redrive stopped at %s/%d@%d, which failed again: %s; the stream stays blocked there (fix the cause and redrive again)",
				cur.Topic, cur.Partition, cur.Offset, cur.Reason)
		case cur.Offset != last:
			last, quiet = cur.Offset, time.Now()
			done := slices.IndexFunc(parked, func(l consume.DeadLetter) bool { return l.OriginalOffset >= cur.Offset })
			fmt.Fprintf(d.stderr, "applied %d of %d event(s)\n", max(done, 0), len(parked))
		case time.Since(quiet) >= 10*time.Second:
			quiet = time.Now()
			fmt.Fprintf(d.stderr, "waiting for the consumer of %s that owns %s/%d (is the service running?)\n", group, cur.Topic, cur.Partition)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the redrive has not finished within %s; it stays requested and runs when a consumer of %s owns %s/%d: follow it with `annals dlq list --group %s --stream %s`",
				wait, group, cur.Topic, cur.Partition, group, stream)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting; the redrive stays requested: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (d *dlq) release(ctx context.Context, group, stream string, dryRun bool) error {
	p, err := d.plan(ctx, group, stream)
	if err != nil {
		return err
	}
	if p.block.Stopped {
		return d.releaseStopped(ctx, group, stream, p.block, dryRun)
	}
	parked := p.parked
	if dryRun {
		fmt.Fprintf(d.stdout, "dry run: not released; a release leaves these %d event(s) unapplied in the dead-letter topic.\n", len(parked))
		return nil
	}
	if _, err := d.blocks.Release(ctx, group, stream); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "released: the running consumers of %s apply the stream's later events again within their block refresh; "+
		"these %d event(s) stay unapplied in %s\n", group, len(parked), d.cfg.DLQTopic(group))
	return nil
}

// releaseStopped releases a stream whose partition stopped at a failing event
// (EVENT_HANDLER_ERROR_HANDLING=false): the consumer that owns the partition reads it again
// from that event and tries it once more.
func (d *dlq) releaseStopped(ctx context.Context, group, stream string, b consume.Block, dryRun bool) error {
	if dryRun {
		fmt.Fprintf(d.stdout, "dry run: not released; a release has the consumer of %s that owns %s/%d try the event at offset %d again.\n",
			group, b.Topic, b.Partition, b.Offset)
		return nil
	}
	if _, err := d.blocks.Release(ctx, group, stream); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "released: the consumer of %s that owns %s/%d reads it again from offset %d within its block refresh "+
		"and tries the failing event once more; if it fails again, the partition stops there again\n", group, b.Topic, b.Partition, b.Offset)
	return nil
}

// eventID shortens nothing but says "-" for no event.
func eventID(id string) string {
	if id == "" || id == "00000000-0000-0000-0000-000000000000" {
		return "-"
	}
	return id
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

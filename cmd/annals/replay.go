package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
)

const replayUsage = `replay --group G --since T [--until T] [--topics a,b] [--dry-run]
  Moves the committed offsets of the stopped consumer group G back to the first record at or
  after T on every partition of the topics (default: the deployment's event topics), so that
  its consumers receive the events from T on again. T is an RFC 3339 time
  (2026-01-02T15:04:05Z) or a duration back from now (90m, 2h, 7d, 1d12h). --until only
  reports, per partition, which offsets hold the records before it: the records after it are
  delivered again too, and consumers with an inbox skip the events they already applied.
  A group with live members is refused: stop its consumers first. --dry-run prints the plan
  and commits nothing.
replay --group projector --since T [--until T] --reprocess [--json] [--dry-run]
  Applies the events recorded in [T, until) again to the projector's read models (--until
  defaults to now; later events are not reprocessed): every user and order stream with an
  event in the range is rebuilt from its whole history in the event store, so its row ends as
  the full history makes it; other streams are left alone. The projector may keep running; its
  offsets and inbox are not touched. Prints progress, then the streams rebuilt, the events
  processed, skipped and applied, the errors (events refused, exit status 1) and the duration;
  --json prints them as JSON (progress on stderr); --dry-run only counts. The notifier's group
  is refused (it would send a second email), the auditor's too (duplicate chain entries).`

// replayCmd moves a stopped consumer group's committed offsets back to a point in time.
// Relative times count back from the moment the command starts.
func replayCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout, stderr io.Writer) error {
	now := time.Now()
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	group := fs.String("group", "", "consumer group")
	sinceFlag := fs.String("since", "", "RFC 3339 time or duration back from now")
	untilFlag := fs.String("until", "", "RFC 3339 time or duration back from now")
	topicsFlag := fs.String("topics", "", "comma-separated topics")
	dryRun := fs.Bool("dry-run", false, "print the plan, commit nothing")
	reprocess := fs.Bool("reprocess", false, "apply the events of [since, until) again (the projector's group)")
	asJSON := fs.Bool("json", false, "print the reprocess report as JSON")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: annals "+replayUsage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: replay takes no arguments besides its flags, got %q", errUsage, fs.Args())
	case *group == "":
		return fmt.Errorf("%w: replay needs --group", errUsage)
	case *sinceFlag == "":
		return fmt.Errorf("%w: replay needs --since", errUsage)
	case *reprocess && *topicsFlag != "":
		return fmt.Errorf("%w: --reprocess takes no --topics: it reprocesses the streams the group's read models are made of", errUsage)
	case *asJSON && !*reprocess:
		return fmt.Errorf("%w: --json goes with --reprocess", errUsage)
	}
	since, err := replayParseTime("since", *sinceFlag, now)
	if err != nil {
		return err
	}
	var until time.Time
	if *untilFlag != "" {
		if until, err = replayParseTime("until", *untilFlag, now); err != nil {
			return err
		}
		if !until.After(since) {
			return fmt.Errorf("--until %s must be after --since %s", replayFormatTime(until), replayFormatTime(since))
		}
	} else if *reprocess && !now.After(since) {
		return fmt.Errorf("--since %s must be before now when --until is not given", replayFormatTime(since))
	}
	if *reprocess {
		if until.IsZero() {
			until = now
		}
		return replayReprocess(ctx, loadConfig, reprocessRun{group: *group, since: since, until: until, dryRun: *dryRun, json: *asJSON}, stdout, stderr)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	var topics []string
	for t := range strings.SplitSeq(*topicsFlag, ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		for _, c := range wiring.Categories {
			topics = append(topics, cfg.TopicName(c))
		}
	}

	if err := app.CheckKafka(ctx, cfg.Kafka, nil); err != nil {
		return err
	}
	r := consume.Replayer{Brokers: cfg.Kafka.Brokers, Security: cfg.Kafka.Security()}
	replay := r.Replay
	if *dryRun {
		replay = r.Plan
	}
	plan, err := replay(ctx, *group, topics, since, until)
	if err != nil {
		return err
	}
	replayPrint(stdout, plan, strings.Join(topics, ", "))
	return nil
}

// replayParseTime reads the value of --name: an RFC 3339 time, or a positive duration back
// from now (Go's durations, and whole days with a d: 7d, 1d12h).
func replayParseTime(name, v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if days, rest, ok := strings.Cut(v, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil && n >= 0 && n <= 100000 {
			d = time.Duration(n) * 24 * time.Hour
			if rest != "" {
				var r time.Duration
				r, err = time.ParseDuration(rest)
				d += r
			}
		} else if err == nil {
			err = errors.New("out of range")
		}
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%w: --%s %q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a positive duration back from now (90m, 2h, 7d)",
			errUsage, name, v)
	}
	return now.Add(-d), nil
}

func replayFormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func replayRecords(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return strconv.FormatInt(n, 10) + " records"
}

func replayPrint(w io.Writer, plan *consume.ReplayPlan, topics string) {
	fmt.Fprintf(w, "group %s (%s, %d live members) on %s\nsince %s", plan.Group, plan.State, plan.Members, topics, replayFormatTime(plan.Since))
	if !plan.Until.IsZero() {
		fmt.Fprintf(w, ", until %s", replayFormatTime(plan.Until))
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "TOPIC\tPARTITION\tOLD\tNEW\tEND"
	if !plan.Until.IsZero() {
		header += "\tUNTIL\t[SINCE, UNTIL)"
	}
	fmt.Fprintln(tw, header+"\tNOTE")
	offset := func(o int64) string {
		if o < 0 {
			return "-"
		}
		return strconv.FormatInt(o, 10)
	}
	for _, p := range plan.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d", p.Topic, p.Partition, offset(p.Old), offset(p.New), p.End)
		if !plan.Until.IsZero() {
			fmt.Fprintf(tw, "\t%d\t[%d, %d) %s", p.Until, p.Since, p.Until, replayRecords(max(p.Until-p.Since, 0)))
		}
		var note string
		switch {
		case p.Moved():
			note = "moved back " + replayRecords(p.Old-p.New)
		case p.Old < 0:
			note = "no committed offset: left without one"
		case p.Old < p.Since:
			note = "unchanged: the group is not past since yet"
		default:
			note = "unchanged"
		}
		fmt.Fprintf(tw, "\t%s\n", note)
	}
	tw.Flush()
	fmt.Fprintln(w)

	verb := "moved"
	if !plan.Committed {
		verb = "would move"
	}
	fmt.Fprintf(w, "%s %d of %d partitions back. The group's consumers receive every record from NEW on again", verb, plan.Moved(), len(plan.Partitions))
	if !plan.Until.IsZero() {
		fmt.Fprint(w, ",\nthose after --until too")
	}
	fmt.Fprintln(w, "; consumers with an inbox skip the events they have already applied.")
	if !plan.Committed {
		fmt.Fprintln(w, "dry run: nothing was committed.")
		if plan.Active() {
			fmt.Fprintf(w, "the group has %d live member(s) (%s): stop its consumers first, or the replay fails.\n", plan.Members, plan.State)
		}
	}
}

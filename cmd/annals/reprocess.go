package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// reprocessRun is what `annals replay --reprocess` was asked to do.
type reprocessRun struct {
	group        string
	since, until time.Time
	dryRun, json bool
}

// reprocessReport is the JSON report of `annals replay --reprocess --json`.
type reprocessReport struct {
	Group           string                 `json:"group"`
	Since           time.Time              `json:"since"`
	Until           time.Time              `json:"until"`
	DryRun          bool                   `json:"dry_run"`
	Streams         int                    `json:"streams"`
	Events          int64                  `json:"events"`
	EventsProcessed int64                  `json:"events_processed"`
	EventsSkipped   int64                  `json:"events_skipped"`
	EventsApplied   int64                  `json:"events_applied"`
	Errors          []reprocessReportError `json:"errors"`
	StartedAt       time.Time              `json:"started_at"`
	EndedAt         time.Time              `json:"ended_at"`
	DurationSeconds float64                `json:"duration_seconds"`
}

type reprocessReportError struct {
	StreamID string `json:"stream_id"`
	EventID  string `json:"event_id,omitempty"`
	Version  int64  `json:"version"`
	Type     string `json:"type,omitempty"`
	Error    string `json:"error"`
}

// reprocessService tells which consuming service's group name is: the service's name or its
// group's; "" when it is neither.
func reprocessService(cfg *config.Config, name string) string {
	for _, s := range wiring.ConsumingServices {
		if name == s || name == cfg.ConsumerGroup(s) {
			return s
		}
	}
	return ""
}

// replayReprocess runs `annals replay --reprocess`: the projector's read models rebuilt for the
// streams with events in [since, until), from the event store. The notifier's and the
// auditor's groups are refused: their handlers have effects that must happen once per event.
func replayReprocess(ctx context.Context, loadConfig func() (*config.Config, error), r reprocessRun, stdout, stderr io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	switch reprocessService(cfg, r.group) {
	case "projector":
	case "notifier":
		return fmt.Errorf("--reprocess refuses the notifier's group %s: it sends an email for each event it handles, and reprocessing would send a second email; nothing was changed",
			cfg.ConsumerGroup("notifier"))
	case "auditor":
		return fmt.Errorf("--reprocess refuses the auditor's group %s: its log is a hash chain with one entry per event, and reprocessing would add duplicate entries; nothing was changed (annals audit verify checks the chain)",
			cfg.ConsumerGroup("auditor"))
	default:
		var known []string
		for _, s := range wiring.ConsumingServices {
			known = append(known, fmt.Sprintf("%s (%s)", cfg.ConsumerGroup(s), s))
		}
		return fmt.Errorf("--reprocess: unknown group %q: the deployment's groups are %s, and only the projector's can be reprocessed; nothing was changed",
			r.group, strings.Join(known, ", "))
	}
	group := cfg.ConsumerGroup("projector")
	pool, err := app.NewPool(ctx, cfg.EventStore, "annals-replay")
	if err != nil {
		return err
	}
	defer pool.Close()
	keys, err := wiring.PersonalDataKeyring(cfg, pool)
	if err != nil {
		return err
	}
	proj := readmodel.New(pool, readmodel.Options{BatchSize: cfg.Projections.BatchSize, Keys: keys})

	started := time.Now()
	var st readmodel.ReprocessStats
	if r.dryRun {
		st, err = proj.PlanReprocess(ctx, r.since, r.until)
	} else {
		progress := stdout
		if r.json {
			progress = stderr
		}
		fmt.Fprintf(progress, "group %s: rebuilding the read-model rows of the streams with events in the range, from the event store\n", group)
		st, err = proj.Reprocess(ctx, r.since, r.until, progress)
	}
	if err != nil {
		return err
	}
	ended := time.Now()
	if r.json {
		rep := reprocessReport{Group: group, Since: r.since.UTC(), Until: r.until.UTC(), DryRun: r.dryRun,
			Streams: st.Streams, Events: st.Events, EventsProcessed: st.Processed, EventsSkipped: st.Skipped,
			EventsApplied: st.Applied, Errors: []reprocessReportError{},
			StartedAt: started.UTC(), EndedAt: ended.UTC(), DurationSeconds: ended.Sub(started).Seconds()}
		for _, e := range st.Errors {
			re := reprocessReportError{StreamID: e.StreamID, Version: e.Version, Type: e.Type, Error: e.Err}
			if e.Version >= 0 {
				re.EventID = e.EventID.String()
			}
			rep.Errors = append(rep.Errors, re)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		reprocessPrint(stdout, group, r, st, ended.Sub(started))
	}
	if n := len(st.Errors); n > 0 {
		return fmt.Errorf("%d event(s) could not be applied: their streams stay at the version before them, as in the live projector (annals dlq list shows the streams it has blocked)", n)
	}
	return nil
}

func reprocessPrint(w io.Writer, group string, r reprocessRun, st readmodel.ReprocessStats, took time.Duration) {
	if r.dryRun {
		fmt.Fprintf(w, "group %s: would reprocess %d events of %d streams in [%s, %s), rebuilding those streams' read-model rows from their whole histories\ndry run: nothing was changed.\n",
			group, st.Events, st.Streams, replayFormatTime(r.since), replayFormatTime(r.until))
		return
	}
	fmt.Fprintln(w)
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-19s"+format+"\n", append([]any{name}, args...)...)
	}
	line("streams rebuilt", "%d", st.Streams)
	line("events processed", "%d of %d in the range (%d skipped behind a refused event)", st.Processed, st.Events, st.Skipped)
	line("events applied", "%d (the streams' whole histories, before since and after until included)", st.Applied)
	line("errors", "%d", len(st.Errors))
	for _, e := range st.Errors {
		fmt.Fprintf(w, "  %s@%d %s %s: %s\n", e.StreamID, e.Version, e.Type, e.EventID, e.Err)
	}
	line("duration", "%s", took.Round(time.Millisecond))
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/lag"
)

const lagUsage = `lag [--group G] [--watch] [--interval 2s] [--window 10]
  Prints, for every consumer group reading the deployment's event topics (dead-letter topics
  are left out), or for G only, each partition's committed offset, log-end offset, lag and lag
  in seconds (the age of the oldest record the group has not consumed), with the group's
  state, live members and status. A group with no live member is shown as long as the broker
  keeps its committed offsets. The status (ok, warn, stall, stop) compares a window of
  --window polls: with --watch the tables are printed again every --interval and a lagging
  group's status shows once the window is full (n/a until then); without --watch one poll is
  made, so the status is ok for a group that has caught up and n/a for one that lags.

lag-exporter [--addr :9308] [--interval 10s] [--window 10]
  Serves the same figures as Prometheus metrics on /metrics (annals_consumer_group_* and
  kafka_exporter's kafka_consumergroup_* names, for Grafana dashboard 7589), with /livez and
  /readyz (ready while the last successful poll is recent), polling every --interval until
  stopped. --interval and --window default to LAG_POLL_INTERVAL and LAG_STATUS_WINDOW.`

// lagCmd prints the lag of the consumer groups reading the event topics, once or until
// stopped (--watch).
func lagCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	fs := flag.NewFlagSet("lag", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	group := fs.String("group", "", "consumer group (default: every group reading the event topics)")
	watch := fs.Bool("watch", false, "print again every interval until stopped")
	interval := fs.Duration("interval", 2*time.Second, "time between polls with --watch")
	window := fs.Int("window", lag.DefaultWindow, "polls the status compares")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: annals "+lagUsage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: lag takes no arguments besides its flags, got %q", errUsage, fs.Args())
	case *interval <= 0:
		return fmt.Errorf("%w: --interval must be positive", errUsage)
	case *window < 2:
		return fmt.Errorf("%w: --window must be at least 2", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if err := app.CheckKafka(ctx, cfg.Kafka, nil); err != nil {
		return err
	}
	var groups []string
	if *group != "" {
		groups = []string{*group}
	}
	mon, err := lag.New(lag.Config{
		Brokers: cfg.Kafka.Brokers, Security: cfg.Kafka.Security(), Topics: wiring.EventTopics(cfg), Groups: groups, Interval: *interval, Window: *window,
	})
	if err != nil {
		return err
	}
	if !*watch {
		s, err := mon.Poll(ctx)
		if err != nil {
			return err
		}
		lagPrint(stdout, s, mon.Window(), false)
		return nil
	}
	clearScreen := lagIsTerminal(stdout)
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		s, err := mon.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if clearScreen {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s  poll failed: %v\n", time.Now().UTC().Format(time.RFC3339), err)
		} else {
			lagPrint(stdout, s, mon.Window(), true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lagIsTerminal tells whether w is a terminal, where --watch clears the screen before each
// print.
func lagIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lagPrint prints a snapshot as kafka-consumer-groups --describe does, one table per group.
func lagPrint(w io.Writer, s *lag.Snapshot, window int, watch bool) {
	var topics []string
	for _, tp := range s.Topics {
		if len(topics) == 0 || topics[len(topics)-1] != tp.Topic {
			topics = append(topics, tp.Topic)
		}
	}
	fmt.Fprintf(w, "consumer lag on %s at %s\n", strings.Join(topics, ", "), s.Time.UTC().Format(time.RFC3339))
	if len(s.Groups) == 0 {
		fmt.Fprintln(w, "\nno consumer group has committed offsets on these topics or members assigned to them.")
	}
	for _, g := range s.Groups {
		fmt.Fprintf(w, "\nGROUP %s  STATE %s  MEMBERS %d  STATUS %s\n\n", g.Name, g.State, g.Members, lagStatus(g, window, watch))
		if len(g.Partitions) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tLAG-SECONDS\tCONSUMER-ID\tHOST\tCLIENT-ID")
		for _, p := range g.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, lagDash(p.Committed), p.End,
				lagDash(p.Lag), lagSeconds(p.LagSeconds), lagOr(p.MemberID), lagOr(p.Host), lagOr(p.ClientID))
		}
		fmt.Fprintf(tw, "TOTAL\t\t\t\t%d\t%s\n", g.Lag(), lagSeconds(g.MaxLagSeconds()))
		tw.Flush()
	}
	for _, err := range s.Errors {
		fmt.Fprintf(w, "\nwarning: %v\n", err)
	}
}

// lagStatus is a group's status in words. Unknown reads n/a: without --watch, because one
// poll cannot judge a lagging group; with it, until the window is full.
func lagStatus(g lag.Group, window int, watch bool) string {
	switch {
	case g.Status != lag.StatusUnknown:
		return fmt.Sprintf("%s (%s)", g.Status, g.Reason)
	case !watch && g.Lag() > 0:
		return fmt.Sprintf("n/a (the status compares %d polls: run with --watch)", window)
	}
	return fmt.Sprintf("n/a (%s)", g.Reason)
}

func lagDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func lagSeconds(s float64) string {
	switch {
	case s < 0:
		return "-"
	case s == 0:
		return "0"
	}
	return strconv.FormatFloat(s, 'f', 1, 64)
}

func lagOr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lagExporterCmd serves the lag of the consumer groups reading the event topics as
// Prometheus metrics until ctx ends.
func lagExporterCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stderr io.Writer) error {
	fs := flag.NewFlagSet("lag-exporter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", ":9308", "HTTP listen address")
	interval := fs.Duration("interval", lag.DefaultInterval, "time between polls (default LAG_POLL_INTERVAL)")
	window := fs.Int("window", lag.DefaultWindow, "polls the status compares (default LAG_STATUS_WINDOW)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: annals "+lagUsage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: lag-exporter takes no arguments besides its flags, got %q", errUsage, fs.Args())
	case *interval <= 0:
		return fmt.Errorf("%w: --interval must be positive", errUsage)
	case *window < 2:
		return fmt.Errorf("%w: --window must be at least 2", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	// A flag given wins; otherwise the exporter polls as the writer's embedded one does, from
	// the configuration (which has checked those values already).
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["interval"] {
		*interval = cfg.Monitoring.LagPollInterval
	}
	if !set["window"] {
		*window = cfg.Monitoring.LagStatusWindow
	}
	log := app.NewLogger(cfg.Log, stderr).With("service", "lag-exporter")
	if err := app.CheckKafka(ctx, cfg.Kafka, log); err != nil {
		return err
	}
	mon, err := lag.New(lag.Config{
		Brokers: cfg.Kafka.Brokers, Security: cfg.Kafka.Security(), Topics: wiring.EventTopics(cfg), Interval: *interval, Window: *window, Logger: log,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), mon)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: lagExporterHandler(reg, mon, 3**interval+lag.DefaultTimeout), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("lag exporter started", "addr", ln.Addr().String(), "topics", wiring.EventTopics(cfg), "interval", interval.String(), "window", *window)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- mon.Run(runCtx) }()
	select {
	case err = <-served:
		err = fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	stop()
	<-ran
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", serr)
	}
	log.Info("lag exporter stopped")
	return err
}

// lagExporterHandler serves /metrics from reg, /livez, and /readyz, which answers 503 until
// a poll has succeeded and when the last successful poll is older than maxAge.
func lagExporterHandler(reg *prometheus.Registry, mon *lag.Monitor, maxAge time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s := mon.Snapshot()
		switch {
		case s == nil:
			httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "no successful poll of the brokers yet")
		case time.Since(s.Time) > maxAge:
			httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable",
				fmt.Sprintf("the last successful poll of the brokers was at %s", s.Time.UTC().Format(time.RFC3339)))
		default:
			httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "last_poll": s.Time.UTC().Format(time.RFC3339Nano), "groups": len(s.Groups)})
		}
	})
	return mux
}

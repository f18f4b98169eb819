//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"

	"github.com/annals-dev/annals/internal/testenv"
)

// The lag exporter's end-to-end test: the writer, the projector, the notifier and the auditor
// run as processes of their own in a fault environment, and the writer's embedded lag exporter
// is read from its /metrics as Prometheus would. The notifier is stopped while commands keep
// coming: its group's lag and lag in seconds must grow and its status turn to stop, while the
// projector's and the auditor's groups keep pace. With the commands paused, the exporter's
// figures must be those of Kafka's own kafka-consumer-groups --describe, partition by
// partition. Once the notifier is started again its group must catch up and leave stop.

// The exporter polls every lagInterval and judges a status over lagWindow polls, so that a
// group that has stopped shows it about a second after its lag appeared, not after the
// default 100 s.
const (
	lagInterval = 250 * time.Millisecond
	lagWindow   = 4
	// lagStopPolls is how many successive polls read from the exporter must show the
	// notifier's group in status stop, its lag and lag in seconds growing, while commands keep
	// coming.
	lagStopPolls = 5
	// lagStepEvery paces the commands sent while the notifier is stopped: each step appends
	// two events, so about 50 events a second.
	lagStepEvery = 40 * time.Millisecond
)

// builtConsumers are the notifier and the auditor, built once per test binary next to
// buildBinaries' programs.
var builtConsumers struct {
	once              sync.Once
	notifier, auditor string
	err               error
}

// buildConsumerBinaries builds the notifier and the auditor into the folder of buildBinaries,
// which TestMain removes.
func buildConsumerBinaries(t *testing.T) (notifier, auditor string) {
	t.Helper()
	buildBinaries(t)
	builtConsumers.once.Do(func() {
		cmd := exec.Command("go", "build", "-o", built.dir+string(filepath.Separator), "./services/notifier", "./services/auditor")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			builtConsumers.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		builtConsumers.notifier, builtConsumers.auditor = filepath.Join(built.dir, "notifier"), filepath.Join(built.dir, "auditor")
	})
	if builtConsumers.err != nil {
		t.Fatal(builtConsumers.err)
	}
	return builtConsumers.notifier, builtConsumers.auditor
}

// ---------------------------------------------------------------- the exporter's figures

// lagPart is a partition of a topic.
type lagPart struct {
	topic     string
	partition int
}

func (p lagPart) String() string { return p.topic + "/" + strconv.Itoa(p.partition) }

// lagGroup is what the exporter says of a consumer group, under its own names and under
// kafka_exporter's.
type lagGroup struct {
	status, state string
	members       float64
	maxLagSeconds float64 // -1 when not exported

	committed, lag, lagSeconds map[lagPart]float64 // annals_consumer_group_*
	compatOffset, compatLag    map[lagPart]float64 // kafka_consumergroup_*
}

func (g *lagGroup) lagSum() float64 {
	var n float64
	for _, v := range g.lag {
		n += v
	}
	return n
}

// caughtUp: every partition with a committed offset lags by 0, and there are want of them.
func (g *lagGroup) caughtUp(want int) bool {
	return len(g.lag) == want && g.lagSum() == 0
}

func (g *lagGroup) String() string {
	return fmt.Sprintf("status %s, state %s, %g members, lag %g on %d partitions, max lag seconds %.3f",
		g.status, g.state, g.members, g.lagSum(), len(g.lag), g.maxLagSeconds)
}

// lagFigures is one scrape of the writer's /metrics: the figures of the exporter's last
// successful poll.
type lagFigures struct {
	polled     float64 // annals_lag_monitor_last_poll_timestamp_seconds
	pollErrors float64
	ends       map[lagPart]float64 // annals_topic_partition_end_offset
	compatEnds map[lagPart]float64 // kafka_topic_partition_current_offset
	groups     map[string]*lagGroup
}

// group is the named group's figures; a group the exporter does not report has the status
// "absent" and no partitions.
func (f *lagFigures) group(name string) *lagGroup {
	if g := f.groups[name]; g != nil {
		return g
	}
	return &lagGroup{status: "absent", state: "absent", maxLagSeconds: -1}
}

// summary shows the figures of the groups, for logs and failure messages.
func (f *lagFigures) summary(groups ...string) string {
	if f == nil {
		return "no figures read"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "poll at %s, end offsets %g", time.UnixMilli(int64(f.polled*1000)).UTC().Format("15:04:05.000"), sumFloats(f.ends))
	for _, g := range groups {
		fmt.Fprintf(&b, "; %s: %v", g, f.group(g))
	}
	return b.String()
}

func sumFloats[K comparable](m map[K]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

// scrapeLag reads the writer's /metrics and parses its lag figures with Prometheus' own
// text-format parser.
func scrapeLag(url string) (*lagFigures, error) {
	status, body, err := get(context.Background(), url+"/metrics")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	f := &lagFigures{ends: map[lagPart]float64{}, compatEnds: map[lagPart]float64{}, groups: map[string]*lagGroup{}}
	group := func(name string) *lagGroup {
		g := f.groups[name]
		if g == nil {
			g = &lagGroup{maxLagSeconds: -1, committed: map[lagPart]float64{}, lag: map[lagPart]float64{}, lagSeconds: map[lagPart]float64{},
				compatOffset: map[lagPart]float64{}, compatLag: map[lagPart]float64{}}
			f.groups[name] = g
		}
		return g
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			var part lagPart
			if p, ok := labels["partition"]; ok {
				n, err := strconv.Atoi(p)
				if err != nil {
					return nil, fmt.Errorf("%s: partition %q", name, p)
				}
				part = lagPart{labels["topic"], n}
			}
			switch name {
			case "annals_lag_monitor_last_poll_timestamp_seconds":
				f.polled = v
			case "annals_lag_monitor_poll_errors_total":
				f.pollErrors = v
			case "annals_topic_partition_end_offset":
				f.ends[part] = v
			case "kafka_topic_partition_current_offset":
				f.compatEnds[part] = v
			case "annals_consumer_group_status":
				if v == 1 {
					group(labels["group"]).status = labels["status"]
				}
			case "annals_consumer_group_state":
				if v == 1 {
					group(labels["group"]).state = labels["state"]
				}
			case "annals_consumer_group_members":
				group(labels["group"]).members = v
			case "annals_consumer_group_max_lag_seconds":
				group(labels["group"]).maxLagSeconds = v
			case "annals_consumer_group_committed_offset":
				group(labels["group"]).committed[part] = v
			case "annals_consumer_group_lag":
				group(labels["group"]).lag[part] = v
			case "annals_consumer_group_lag_seconds":
				group(labels["group"]).lagSeconds[part] = v
			case "kafka_consumergroup_current_offset":
				group(labels["consumergroup"]).compatOffset[part] = v
			case "kafka_consumergroup_lag":
				group(labels["consumergroup"]).compatLag[part] = v
			}
		}
	}
	if f.polled == 0 {
		return nil, fmt.Errorf("/metrics has no lag poll yet")
	}
	return f, nil
}

// lagWatch reads the exporter's figures poll after poll.
type lagWatch struct {
	t      *testing.T
	url    string
	groups []string // the groups failure messages show
	last   *lagFigures
}

// next waits for the figures of a poll later than the last one read, and returns them.
func (w *lagWatch) next() *lagFigures {
	w.t.Helper()
	var after float64
	if w.last != nil {
		after = w.last.polled
	}
	within := 10*lagInterval + 30*time.Second
	deadline := time.Now().Add(within)
	for {
		f, err := scrapeLag(w.url)
		if err == nil && f.polled > after {
			w.last = f
			return f
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no new poll of the lag exporter within %v (last scrape: %v); its last figures: %s", within, err, w.last.summary(w.groups...))
		}
		// A fifth of the poll interval between scrapes: each one renders and parses every
		// metric of the writer, which costs a shared machine more than fresher figures are
		// worth.
		time.Sleep(lagInterval / 5)
	}
}

// until reads the figures of poll after poll until cond holds for them, and fails with the
// last figures seen when it has not within the time given.
func (w *lagWatch) until(within time.Duration, what string, cond func(f *lagFigures) bool) *lagFigures {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if f := w.next(); cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("waited %v for %s; the exporter's last figures: %s", within, what, w.last.summary(w.groups...))
		}
	}
}

// ---------------------------------------------------------------- commands

// lagStep creates a user and an order of theirs: one event on each event topic.
func lagStep(base, domain string, i int) error {
	ctx := context.Background()
	user, err := notifierCommand(ctx, base, "POST", "/v1/users",
		map[string]any{"email": fmt.Sprintf("lag%d@%s", i, domain), "name": fmt.Sprintf("Lag Test %d", i)})
	if err != nil {
		return err
	}
	_, err = notifierCommand(ctx, base, "POST", "/v1/orders", map[string]any{"user_id": user,
		"items": []map[string]any{{"id": "sku-1", "name": "Thing", "price_cents": 100 + i, "quantity": 1}}})
	return err
}

// lagLoad sends a step every interval until paused.
type lagLoad struct {
	steps atomic.Int64
	pause chan struct{}
	done  chan error
}

// startLagLoad sends steps numbered from first on. No request is cut short: pause lets the
// step in flight finish, so that nothing is appended after it returns.
func startLagLoad(base, domain string, first int, every time.Duration) *lagLoad {
	l := &lagLoad{pause: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := first; ; i++ {
			select {
			case <-l.pause:
				l.done <- nil
				return
			case <-tick.C:
			}
			if err := lagStep(base, domain, i); err != nil {
				l.done <- err
				return
			}
			l.steps.Add(1)
		}
	}()
	return l
}

// stop pauses the load and returns its first failure.
func (l *lagLoad) stop() error {
	close(l.pause)
	return <-l.done
}

// ---------------------------------------------------------------- Kafka's own tool

// ---------------------------------------------------------------- the test

// TestLag_StoppedConsumer: the notifier is stopped with SIGTERM while commands keep coming.
// The writer's lag exporter shows its group's lag and lag in seconds growing, with status
// stop, while the projector's and the auditor's groups stay ok; with the commands paused, the
// exporter agrees with kafka-consumer-groups --describe on every partition of the three
// groups; the notifier started again catches up and its group leaves stop.
func TestLag_StoppedConsumer(t *testing.T) {
	start := time.Now()
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)
	buildTook := time.Since(start)

	e := newFaultEnv(t)
	domain := "l" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".annals-test.invalid"
	t.Cleanup(func() { notifierDeleteMail(t, domain) })
	e.vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
	e.vars["SMTP_STARTTLS"] = "none"
	e.vars["NOTIFIER_RATE_LIMIT"] = "0"
	e.vars["NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR"] = "0" // one API key makes every user
	e.vars["LAG_EXPORTER_ENABLED"] = "true"
	e.vars["LAG_POLL_INTERVAL"] = lagInterval.String()
	e.vars["LAG_STATUS_WINDOW"] = strconv.Itoa(lagWindow)
	// The groups commit more often than the window spans (config.Validate insists): one that
	// commits once a second would stand still through a window of 750 ms and read as stalled.
	e.vars["CONSUMER_COMMIT_INTERVAL"] = (lagInterval * (lagWindow - 1) / 3).String()
	projectorGroup, notifierGroup, auditorGroup := e.cfg.ConsumerGroup("projector"), e.cfg.ConsumerGroup("notifier"), e.cfg.ConsumerGroup("auditor")
	groups := []string{projectorGroup, notifierGroup, auditorGroup}
	topics := e.eventTopics()
	partitions := len(topics) * e.cfg.Kafka.TopicPartitions

	writer := startService(t, bins.writer, e, "writer", freeAddr(t))
	startService(t, bins.projector, e, "projector", freeAddr(t))
	notifierAddr := freeAddr(t)
	notifier := startService(t, notifierBin, e, "notifier", notifierAddr)
	startService(t, auditorBin, e, "auditor", freeAddr(t))
	w := &lagWatch{t: t, url: writer.url, groups: groups}

	// Warm-up: commands until every partition of the event topics holds a record, so that
	// every group has a committed offset on each of them, and all three groups caught up.
	steps := 0
	covered := func() bool {
		for _, topic := range topics {
			for _, end := range topicEnds(t, e, topic) {
				if end == 0 {
					return false
				}
			}
		}
		return true
	}
	for !covered() {
		if steps == 200 {
			t.Fatalf("%d steps left a partition of %v empty", steps, topics)
		}
		if err := lagStep(writer.url, domain, steps); err != nil {
			t.Fatal(err)
		}
		steps++
	}
	w.until(time.Minute, fmt.Sprintf("the three groups caught up on all %d partitions, status ok", partitions), func(f *lagFigures) bool {
		for _, g := range groups {
			if fg := f.group(g); !fg.caughtUp(partitions) || fg.status != "ok" || fg.members < 1 {
				return false
			}
		}
		return true
	})
	t.Logf("warm-up: %d steps (%d events) covered the %d partitions; all three groups caught up", steps, 2*steps, partitions)

	// The notifier stops; its group keeps its committed offsets and has no member left.
	sigterm := time.Now()
	if !notifier.stop(30 * time.Second) {
		t.Fatal("the notifier did not exit within 30 s of SIGTERM")
	}
	exited := time.Since(sigterm)
	if notifier.err != nil {
		t.Errorf("the notifier exited with %v on SIGTERM, want a clean exit", notifier.err)
	}
	w.until(30*time.Second, "the notifier's group without members", func(f *lagFigures) bool {
		g := f.group(notifierGroup)
		return g.members == 0 && g.state == "Empty" && g.caughtUp(partitions)
	})
	t.Logf("the notifier exited %.2fs after SIGTERM; %.2fs after SIGTERM the exporter showed its group Empty, caught up",
		exited.Seconds(), time.Since(sigterm).Seconds())
	// A whole window of polls with the group so: the status of the lag that follows is then
	// judged over a full window (a group with fewer polls behind it shows unknown).
	for range lagWindow {
		if f := w.next(); f.group(notifierGroup).status != "ok" || !f.group(notifierGroup).caughtUp(partitions) {
			t.Fatalf("the notifier's group, stopped and caught up, is not ok: %s", f.summary(groups...))
		}
	}

	// Commands keep coming: the notifier's group lags more at every poll, its oldest
	// unconsumed record ages, and once it has lagged with its offsets standing still for a
	// whole window of polls, its status is stop.
	load := startLagLoad(writer.url, domain, steps, lagStepEvery)
	loadStarted := time.Now()
	var history []string
	var stops []*lagFigures
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"; the exporter's polls seen since the commands resumed (at +0s):\n%s", append(args, strings.Join(history, "\n"))...)
	}
	for deadline := time.Now().Add(30 * time.Second); len(stops) < lagStopPolls; {
		if time.Now().After(deadline) {
			fail("waited 30s for %d polls with the notifier's group in status stop", lagStopPolls)
		}
		f := w.next()
		n, p, a := f.group(notifierGroup), f.group(projectorGroup), f.group(auditorGroup)
		history = append(history, fmt.Sprintf("+%.2fs notifier %s lag %g max %.3fs; projector %s lag %g; auditor %s lag %g",
			f.polled-float64(loadStarted.UnixNano())/1e9, n.status, n.lagSum(), n.maxLagSeconds, p.status, p.lagSum(), a.status, a.lagSum()))
		if p.status != "ok" || a.status != "ok" {
			fail("while the notifier is stopped, the projector's and the auditor's groups must stay ok")
		}
		switch {
		case n.status == "stop":
			stops = append(stops, f)
		case len(stops) > 0:
			fail("the notifier's group left stop while the notifier was still stopped")
		case n.status != "ok":
			// Until the window is full of lagging polls the status stays ok (its lag was 0
			// within the window); warn, stall or unknown would be wrong for a group with
			// no member.
			fail("the notifier's group went %s before stop", n.status)
		}
	}
	t.Logf("the exporter's polls seen since the commands resumed (at +0s):\n%s", strings.Join(history, "\n"))
	for i, f := range stops {
		n := f.group(notifierGroup)
		if n.state != "Empty" || n.members != 0 {
			t.Errorf("poll %d in stop: the notifier's group is %s with %g members, want Empty with none", i, n.state, n.members)
		}
		if n.maxLagSeconds <= 0 {
			t.Errorf("poll %d in stop: max lag seconds %g, want above 0", i, n.maxLagSeconds)
		}
		// Its oldest unconsumed record was written after the commands resumed.
		if age := f.polled - float64(loadStarted.UnixNano())/1e9; n.maxLagSeconds > age+0.001 {
			t.Errorf("poll %d in stop: max lag seconds %.3f, but the commands resumed only %.3f s before the poll", i, n.maxLagSeconds, age)
		}
		if i == 0 {
			continue
		}
		prev := stops[i-1].group(notifierGroup)
		if n.lagSum() < prev.lagSum() {
			t.Errorf("the notifier's lag fell from %g to %g while it was stopped", prev.lagSum(), n.lagSum())
		}
		// The oldest unconsumed record stays the same, so its age grows with the time between
		// the polls, exactly.
		if grew, passed := n.maxLagSeconds-prev.maxLagSeconds, f.polled-stops[i-1].polled; grew <= 0 || grew-passed > 0.002 || passed-grew > 0.002 {
			t.Errorf("between two polls %.3f s apart the notifier's max lag seconds went from %.3f to %.3f", passed, prev.maxLagSeconds, n.maxLagSeconds)
		}
		for part, v := range n.committed {
			if v != stops[0].group(notifierGroup).committed[part] {
				t.Errorf("the notifier's committed offset on %v moved while it was stopped: %g, then %g", part, stops[0].group(notifierGroup).committed[part], v)
			}
		}
	}
	first, last := stops[0].group(notifierGroup), stops[len(stops)-1].group(notifierGroup)
	if last.lagSum() <= first.lagSum() {
		t.Errorf("over %d polls in stop the notifier's lag went from %g to %g, want it growing", len(stops), first.lagSum(), last.lagSum())
	}

	// Commands paused: once the outbox has been published and the exporter has polled since,
	// its figures are those of kafka-consumer-groups, taken with nothing moving.
	if err := load.stop(); err != nil {
		t.Fatalf("commands: %v", err)
	}
	checkOutbox(t, e.pool, 30*time.Second)
	ends := map[lagPart]float64{}
	for _, topic := range topics {
		for p, end := range topicEnds(t, e, topic) {
			ends[lagPart{topic, p}] = float64(end)
		}
	}
	paused := w.until(30*time.Second, "the exporter's end offsets to be the topics' and the projector and the auditor caught up", func(f *lagFigures) bool {
		for _, g := range []string{projectorGroup, auditorGroup} {
			if !f.group(g).caughtUp(partitions) || f.group(g).status != "ok" {
				return false
			}
		}
		return f.group(notifierGroup).status == "stop" && maps.Equal(f.ends, ends)
	})
	out := testenv.KafkaTools(t, []string{"consumer.group.ConsumerGroupCommand", "--bootstrap-server", strings.Join(e.brokers, ","),
		"--describe", "--group", projectorGroup, "--group", notifierGroup, "--group", auditorGroup})[0]
	after := map[lagPart]float64{}
	for _, topic := range topics {
		for p, end := range topicEnds(t, e, topic) {
			after[lagPart{topic, p}] = float64(end)
		}
	}
	if !maps.Equal(after, ends) {
		t.Fatalf("the end offsets moved while the commands were paused: %v, then %v", ends, after)
	}
	rows := testenv.ConsumerGroupTables(out)
	var table []string
	for _, g := range groups {
		fg := paused.group(g)
		seen := map[lagPart]bool{}
		for _, row := range rows {
			if row["GROUP"] != g {
				continue
			}
			n, err := strconv.Atoi(row["PARTITION"])
			if err != nil {
				t.Fatalf("kafka-consumer-groups printed a row without a partition: %v\n%s", row, out)
			}
			part := lagPart{row["TOPIC"], n}
			seen[part] = true
			exporter := fmt.Sprintf("%g %g %g", fg.committed[part], paused.ends[part], fg.lag[part])
			compat := fmt.Sprintf("%g %g %g", fg.compatOffset[part], paused.compatEnds[part], fg.compatLag[part])
			tool := row["CURRENT-OFFSET"] + " " + row["LOG-END-OFFSET"] + " " + row["LAG"]
			if _, ok := fg.committed[part]; !ok || exporter != tool || compat != tool {
				t.Errorf("%s %v: kafka-consumer-groups says CURRENT-OFFSET LOG-END-OFFSET LAG %s; the exporter %s, under kafka_exporter's names %s", g, part, tool, exporter, compat)
			}
			// The lag in seconds of each partition: 0 when it has no lag, otherwise the age of
			// a record written after the commands resumed.
			age := paused.polled - float64(loadStarted.UnixNano())/1e9
			if sec, ok := fg.lagSeconds[part]; !ok || (fg.lag[part] == 0) != (sec == 0) || sec > age+0.001 {
				t.Errorf("%s %v: lag %g, lag seconds %g (exported: %v); the commands resumed %.3f s before the poll", g, part, fg.lag[part], sec, ok, age)
			}
			if g == notifierGroup {
				table = append(table, fmt.Sprintf("%-40s kafka-consumer-groups %-16s exporter %s", part, tool, exporter))
			}
		}
		if len(seen) != partitions || len(fg.committed) != partitions {
			t.Errorf("%s: kafka-consumer-groups describes %d partitions, the exporter %d, want %d each\n%s", g, len(seen), len(fg.committed), partitions, out)
		}
	}
	slices.Sort(table)
	t.Logf("paused after %d steps: the notifier's group lags by %g (max %.3f s), partition by partition (CURRENT-OFFSET LOG-END-OFFSET LAG):\n%s",
		load.steps.Load(), paused.group(notifierGroup).lagSum(), paused.group(notifierGroup).maxLagSeconds, strings.Join(table, "\n"))

	// The notifier starts again: its group catches up and leaves stop.
	httpc.CloseIdleConnections() // connections to the stopped notifier on the same address
	restarted := time.Now()
	startService(t, notifierBin, e, "notifier-2", notifierAddr)
	var statuses []string
	caughtUp := w.until(time.Minute, "the notifier's group caught up, status ok", func(f *lagFigures) bool {
		n := f.group(notifierGroup)
		if len(statuses) == 0 || statuses[len(statuses)-1] != n.status {
			statuses = append(statuses, n.status)
		}
		return n.caughtUp(partitions) && n.status == "ok" && n.members >= 1
	})
	t.Logf("the notifier started again caught up %.2fs after its start (statuses on the way: %v): %s",
		time.Since(restarted).Seconds(), statuses, caughtUp.summary(groups...))
	if caughtUp.pollErrors != 0 {
		// Not a failure in itself: the first polls meet topics created moments before, whose
		// partitions may not have a leader known to every broker yet, and a failed poll leaves
		// the figures of the one before. The checks above hold the figures to account.
		t.Logf("the exporter counted %g failed polls or parts of polls", caughtUp.pollErrors)
		logWarnings(t, writer.process)
	}
	t.Logf("built in %.1fs, test ran %.1fs in all", buildTook.Seconds(), time.Since(start).Seconds())
}

package auditlog

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the audit log's Prometheus metrics.
type Metrics struct {
	appended prometheus.Counter
	skipped  prometheus.Counter
	verify   *verifyCollector

	checkpointFailures prometheus.Counter
	checkpointRestarts prometheus.Counter
	checkpointEnabled  prometheus.Gauge
	checkpoint         *checkpointCollector
}

var (
	descVerifyOK = prometheus.NewDesc("annals_auditor_last_verify_ok",
		"1 when the last verification of the chain found it intact, 0 when it found it broken.", nil, nil)
	descVerifyTime = prometheus.NewDesc("annals_auditor_last_verify_timestamp_seconds",
		"When the last verification of the chain finished, in Unix seconds.", nil, nil)
	descVerifyEntries = prometheus.NewDesc("annals_auditor_last_verify_entries",
		"The entries the last verification of the chain checked.", nil, nil)
)

// verifyCollector exports the outcome of the last verification, and nothing before the first
// one: a gauge at 0 from start-up would read as "the chain is broken" to an alert rule.
type verifyCollector struct {
	mu   sync.Mutex
	done bool
	ok   bool
	at   time.Time
	n    int64
}

func (c *verifyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descVerifyOK
	ch <- descVerifyTime
	ch <- descVerifyEntries
}

func (c *verifyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		return
	}
	ok := 0.0
	if c.ok {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(descVerifyOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(descVerifyTime, prometheus.GaugeValue, float64(c.at.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descVerifyEntries, prometheus.GaugeValue, float64(c.n))
}

var descCheckpointAge = prometheus.NewDesc("annals_auditor_checkpoint_age_seconds",
	"How old the newest checkpoint the auditor wrote or checked is, in seconds; absent until there is one.", nil, nil)

// checkpointCollector exports the newest checkpoint's age at the time of the scrape, and
// nothing before there is one.
type checkpointCollector struct {
	mu  sync.Mutex
	at  time.Time
	now func() time.Time
}

func (c *checkpointCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCheckpointAge }

func (c *checkpointCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(descCheckpointAge, prometheus.GaugeValue, c.now().Sub(c.at).Seconds())
}

// NewMetrics creates the audit log's metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_appended_total",
			Help: "Events appended to the audit log (transactions committed).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_duplicates_skipped_total",
			Help: "Deliveries of events the audit log had already, skipped (transactions committed).",
		}),
		verify: &verifyCollector{},
		checkpointFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_checkpoint_failures_total",
			Help: "Checks that found the audit log without its newest checkpoint (truncated, rewritten or replaced), or a checkpoint whose signature fails.",
		}),
		checkpointRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_auditor_checkpoint_restarts_total",
			Help: "Checkpoint files the auditor started anew over a chain that already had entries: the file was absent or empty (a lost volume, or moved aside to release a refused chain).",
		}),
		checkpointEnabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "annals_auditor_checkpoints_enabled",
			Help: "1 when the auditor signs checkpoints of the audit log (a key is configured), 0 otherwise.",
		}),
		checkpoint: &checkpointCollector{now: time.Now},
	}
	if reg != nil {
		reg.MustRegister(m.appended, m.skipped, m.verify, m.checkpointFailures, m.checkpointRestarts, m.checkpointEnabled, m.checkpoint)
	}
	return m
}

// tally counts one unit of work's appends until it commits.
type tally struct{ appended, skipped int }

type tallyKey struct{}

// count adds a batch's appends to the unit's tally, or to the metrics at once outside a
// counted unit.
func (m *Metrics) count(ctx context.Context, appended, skipped int) {
	if t, ok := ctx.Value(tallyKey{}).(*tally); ok {
		t.appended += appended
		t.skipped += skipped
		return
	}
	m.add(tally{appended, skipped})
}

func (m *Metrics) add(t tally) {
	m.appended.Add(float64(t.appended))
	m.skipped.Add(float64(t.skipped))
}

func (m *Metrics) verified(r Report) {
	c := m.verify
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done, c.ok, c.n, c.at = true, r.OK, r.Checked, time.Now()
}

func (m *Metrics) checkpointFailed() { m.checkpointFailures.Inc() }

func (m *Metrics) checkpointRestarted() { m.checkpointRestarts.Inc() }

// checkpointAt records the time of the newest checkpoint written or checked.
func (m *Metrics) checkpointAt(at time.Time) {
	c := m.checkpoint
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.at) {
		c.at = at
	}
}

// CheckpointsEnabled records whether the auditor signs checkpoints.
func (m *Metrics) CheckpointsEnabled(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.checkpointEnabled.Set(v)
}

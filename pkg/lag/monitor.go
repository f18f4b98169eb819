package lag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Defaults of Config.
const (
	DefaultInterval = 10 * time.Second
	DefaultWindow   = 10
	DefaultTimeout  = 30 * time.Second
)

// Config configures a Monitor.
type Config struct {
	// Brokers are the addresses of the Kafka brokers.
	Brokers []string
	// Topics are the topics whose consumer groups are watched.
	Topics []string
	// Groups, when set, are the only groups reported, each even when it has no committed
	// offset and no member; when empty, every group reading the topics is.
	Groups []string
	// Interval is the time between two polls of Run (default 10 s).
	Interval time.Duration
	// Window is the number of polls a status is judged over (default 10, at least 2).
	Window int
	// Timeout bounds one poll (default 30 s).
	Timeout time.Duration
	// Security is how to connect to the brokers (TLS, SASL); the zero value is plaintext,
	// over kafka.DefaultTransport.
	Security kafkasec.Security
	// Transport, when set, carries the requests to the brokers instead, and Security is not
	// used.
	Transport kafka.RoundTripper
	// Logger receives a warning for each failed poll; none when nil.
	Logger *slog.Logger
	// Now is the clock the lag in seconds is measured with (time.Now when nil).
	Now func() time.Time
}

// Validate checks the configuration, defaults aside.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("lag: no brokers given"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("lag: no topics given"))
	}
	for _, t := range c.Topics {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, errors.New("lag: an empty topic name"))
		}
	}
	for _, g := range c.Groups {
		if strings.TrimSpace(g) == "" {
			errs = append(errs, errors.New("lag: an empty group name"))
		}
	}
	if c.Interval < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("lag: a negative interval or timeout"))
	}
	if c.Window < 0 || c.Window == 1 {
		errs = append(errs, errors.New("lag: the window needs at least 2 polls"))
	}
	if c.Transport == nil {
		if err := c.Security.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("lag: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Monitor polls the brokers for the lag of the consumer groups reading a set of topics and
// exports the latest figures as Prometheus metrics. Its methods are safe for concurrent use.
type Monitor struct {
	cfg    Config
	client *kafka.Client
	log    *slog.Logger

	pollMu sync.Mutex // one poll at a time; guards history and cache
	// history holds each group's window of samples, the newest last.
	history map[string][]sample
	// cache holds the timestamps of the records at the committed offsets of the last poll.
	cache map[offsetKey]time.Time

	mu     sync.Mutex
	latest *Snapshot

	errors   atomic.Int64
	fetches  atomic.Int64
	lastPoll atomic.Int64 // Unix nanoseconds of the last successful poll
}

// New returns a Monitor; nothing is read before its first Poll.
func New(cfg Config) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Topics, cfg.Groups = unique(cfg.Topics), unique(cfg.Groups)
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	transport := cfg.Transport
	if transport == nil {
		// A monitor polls for as long as the program runs: its transport's connections stay.
		rt, _, err := cfg.Security.RoundTripper()
		if err != nil {
			return nil, fmt.Errorf("lag: %w", err)
		}
		transport = rt
	}
	return &Monitor{
		cfg:     cfg,
		client:  &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.Timeout, Transport: transport},
		log:     log,
		history: map[string][]sample{},
	}, nil
}

// Window is the number of polls a status is judged over.
func (m *Monitor) Window() int { return m.cfg.Window }

// Run polls at once and then every interval until ctx ends, and returns nil then. A failed
// poll is logged and counted; the previous snapshot stays in place. A broker that refuses the
// monitor (its security, or an ACL it lacks: Describe on the topics and the groups) is logged
// as an error that says so, and polled again all the same: the lag is an observer's, and the
// program that runs it has other work.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := m.Poll(ctx); err != nil && ctx.Err() == nil {
			var refused *kafkasec.Error
			if err := kafkasec.Classify(err, m.cfg.Security); errors.As(err, &refused) {
				m.log.Error("lag: the brokers refuse the monitor; polling again all the same", "error", err)
			} else {
				m.log.Warn("lag: poll failed", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the brokers once, adds the result to every group's window, and makes it the
// latest snapshot. It fails only when nothing could be read; parts left out are in the
// snapshot's Errors. Both count in annals_lag_monitor_poll_errors_total.
func (m *Monitor) Poll(ctx context.Context) (*Snapshot, error) {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	s, err := m.read(ctx, m.cfg.Now())
	if err != nil {
		m.errors.Add(1)
		return nil, err
	}
	m.errors.Add(int64(len(s.Errors)))
	for _, err := range s.Errors {
		m.log.Warn("lag: part of a poll failed", "error", err)
	}

	seen := map[string]bool{}
	for i := range s.Groups {
		g := &s.Groups[i]
		seen[g.Name] = true
		h := append(m.history[g.Name], sampleOf(s.Time, *g))
		if len(h) > m.cfg.Window {
			h = slices.Delete(h, 0, len(h)-m.cfg.Window)
		}
		m.history[g.Name] = h
		order := make([]topicPartition, len(g.Partitions))
		for j, p := range g.Partitions {
			order[j] = topicPartition{p.Topic, p.Partition}
		}
		g.Samples = len(h)
		g.Status, g.Reason = evaluate(h, m.cfg.Window, order)
	}
	if len(s.Errors) == 0 { // a group left out by an error keeps its window
		for name := range m.history {
			if !seen[name] {
				delete(m.history, name)
			}
		}
	}

	m.mu.Lock()
	m.latest = s
	m.mu.Unlock()
	m.lastPoll.Store(s.Time.UnixNano())
	return s, nil
}

// Snapshot is the latest successful poll's, nil before the first. It must not be modified.
func (m *Monitor) Snapshot() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest
}

// unique trims the names and drops empty and repeated ones, keeping the order.
func unique(names []string) []string {
	var out []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// InboxPruneConfig configures an InboxPruner. Zero values take the defaults noted.
type InboxPruneConfig struct {
	// Retention is how long an inbox row is kept; required. Keep it well above any time in
	// which an event may be delivered again (a lost commit, a replay): an event delivered after
	// its row is gone is applied again, unless its handler has a guard of its own.
	Retention time.Duration
	// Interval is the time between two prunings (1 h); the first runs at once.
	Interval time.Duration
	// BatchSize is how many rows one statement deletes (10,000), so that no transaction holds
	// many locks or long.
	BatchSize int
	Logger    *slog.Logger
	// Registerer takes the pruner's metric, annals_consumer_inbox_pruned_rows_total (none when
	// nil).
	Registerer prometheus.Registerer
}

// InboxPruner deletes the inbox rows (annals_inbox) of every group recorded more than
// Retention ago, a batch at a time, now and then. Several may run on one database: each batch
// skips the rows another is deleting.
type InboxPruner struct {
	pool   *pgxpool.Pool
	cfg    InboxPruneConfig
	pruned prometheus.Counter
}

// NewInboxPruner checks cfg and returns the pruner of pool's inbox.
func NewInboxPruner(pool *pgxpool.Pool, cfg InboxPruneConfig) (*InboxPruner, error) {
	if cfg.Retention <= 0 {
		return nil, errors.New("inbox pruner: the retention must be positive")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &InboxPruner{pool: pool, cfg: cfg, pruned: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "annals_consumer_inbox_pruned_rows_total",
		Help: "Inbox rows deleted because they were older than the inbox's retention.",
	})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.pruned); err != nil {
			return nil, fmt.Errorf("inbox pruner: %w", err)
		}
	}
	return p, nil
}

// Prune deletes the rows older than the retention, a batch at a time until none is left or ctx
// ends, and returns how many it deleted.
func (p *InboxPruner) Prune(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := p.pool.Exec(ctx, `delete from annals_inbox where ctid = any(array(
			select ctid from annals_inbox where processed_at < clock_timestamp() - $1::interval
			limit $2 for update skip locked))`, p.cfg.Retention, p.cfg.BatchSize)
		if err != nil {
			return total, fmt.Errorf("prune the inbox: %w", err)
		}
		n := tag.RowsAffected()
		total += n
		p.pruned.Add(float64(n))
		if n < int64(p.cfg.BatchSize) {
			return total, nil
		}
	}
}

// Run prunes now and then every Interval until ctx ends; a failure is logged and tried again
// at the next interval. It returns nil when ctx ends.
func (p *InboxPruner) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		n, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.cfg.Logger.Warn("inbox pruner: cannot prune the inbox; trying again later", "error", err, "deleted", n)
		case n > 0:
			p.cfg.Logger.Info("inbox pruner: pruned the inbox", "deleted", n, "retention", p.cfg.Retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Inherit copies into this group's inbox the events recorded in the last retention under
// another group name, one the group went by before (the projector's inbox rows were recorded
// as annals-projector whatever the topic prefix), so that events delivered again after the
// rename are still recognised. It does nothing once the group has rows of its own, and returns
// how many rows it copied.
func (in Inbox) Inherit(ctx context.Context, pool *pgxpool.Pool, from string, retention time.Duration) (int64, error) {
	if from == in.Group {
		return 0, nil
	}
	tag, err := pool.Exec(ctx, `insert into annals_inbox (group_name, event_id, processed_at)
		select $1, event_id, processed_at from annals_inbox
		where group_name = $2 and processed_at >= clock_timestamp() - $3::interval
		  and not exists (select 1 from annals_inbox where group_name = $1)
		on conflict do nothing`, in.Group, from, retention)
	if err != nil {
		return 0, fmt.Errorf("inbox: inherit %s's rows: %w", from, err)
	}
	return tag.RowsAffected(), nil
}

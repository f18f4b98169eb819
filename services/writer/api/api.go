package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/ratelimit"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/feed"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/schema"
)

// DefaultRetries is how often a command without If-Match is re-run after a version conflict.
const DefaultRetries = 3

// Options tune an API.
type Options struct {
	// SnapshotEvery snapshots an aggregate whenever a save crosses a multiple of this many
	// events; 0 disables snapshots.
	SnapshotEvery int
	// Retries is how often a command sent without If-Match is reloaded and re-run after a
	// version conflict at save time (DefaultRetries when 0; negative: never).
	Retries int
	// Logger receives server-side failures (slog.Default when nil).
	Logger *slog.Logger
	// Commands limits each principal's commands (COMMAND_RATE_LIMIT); nil limits none.
	Commands *ratelimit.Limiter
	// Feed is the live feed that GET /v1/subscribe streams; without one it answers 503.
	Feed *feed.Feed
	// Heartbeat is how often an idle stream of GET /v1/subscribe gets a comment line
	// (FEED_HEARTBEAT_INTERVAL; DefaultHeartbeat when 0).
	Heartbeat time.Duration
	// Hops, when set, receives the command_to_commit hop of every command that recorded
	// events: from the request's arrival to the commit of its events.
	Hops *hops.Histogram
	// Disabled refuses every command with httpx.ErrEventSourcingDisabled, appending nothing,
	// while the reads keep working (EVENT_SOURCING_ENABLED=false).
	Disabled bool
	// Catalog is the PostgreSQL database of the schema catalog (GET /v1/schemas); the store's
	// own pool when nil and the store is on PostgreSQL. Without either the schema routes answer
	// 503.
	Catalog schema.DB
}

// API serves the writer's routes on an event store.
type API struct {
	store    Store
	catalog  schema.DB
	users    *events.Repository[domain.UserState]
	orders   *events.Repository[domain.OrderState]
	retries  int
	limit    *ratelimit.Limiter
	hops     *hops.Histogram
	disabled bool
	feed     *feed.Feed
	// heartbeat is how often an idle stream of GET /v1/subscribe gets a comment line.
	heartbeat time.Duration
	log       *slog.Logger
	errs      httpx.Errors
}

// New returns the API on store.
func New(store Store, opts Options) *API {
	a := &API{
		store:     store,
		catalog:   catalogOf(store, opts.Catalog),
		users:     &events.Repository[domain.UserState]{Store: store, Def: domain.User, SnapshotEvery: max(opts.SnapshotEvery, 0)},
		orders:    &events.Repository[domain.OrderState]{Store: store, Def: domain.Order, SnapshotEvery: max(opts.SnapshotEvery, 0)},
		retries:   opts.Retries,
		limit:     opts.Commands,
		hops:      opts.Hops,
		disabled:  opts.Disabled,
		feed:      opts.Feed,
		heartbeat: opts.Heartbeat,
		log:       opts.Logger,
	}
	if a.heartbeat <= 0 {
		a.heartbeat = DefaultHeartbeat
	}
	if a.retries == 0 {
		a.retries = DefaultRetries
	}
	a.retries = max(a.retries, 0)
	if a.log == nil {
		a.log = slog.Default()
	}
	// A snapshot only speeds loads up: one that fails is logged, and the command succeeds.
	snapshotFailed := func(err error) { a.log.Warn("snapshot", "error", err) }
	a.users.SnapshotErrors, a.orders.SnapshotErrors = snapshotFailed, snapshotFailed
	a.errs = httpx.Errors{Dependency: "the event store", Rules: append(slices.Clone(errorRules), subscribeRules...), Logger: a.log}
	return a
}

// StoreOptions are the event store options of the [aggregates] section:
// OPTIMISTIC_CONCURRENCY, MAX_EVENTS_PER_AGGREGATE and MAX_EVENT_BYTES.
func StoreOptions(c config.Aggregates) postgres.Options {
	return postgres.Options{
		DisableOptimisticConcurrency: !c.OptimisticConcurrency,
		MaxEventsPerStream:           c.MaxEventsPerAggregate,
		MaxEventBytes:                c.MaxEventBytes,
	}
}

// OptionsFrom reads the API's options from the configuration: a snapshot every
// SNAPSHOT_FREQUENCY events when AGGREGATE_SNAPSHOTS_ENABLED, no command at all unless
// EVENT_SOURCING_ENABLED, and the live feed's heartbeat every FEED_HEARTBEAT_INTERVAL. The
// feed itself is FeedFrom's.
func OptionsFrom(c *config.Config, log *slog.Logger) Options {
	o := Options{Logger: log, Disabled: !c.EventSourcing.Enabled, Heartbeat: c.Writer.FeedHeartbeatInterval}
	if c.Aggregates.SnapshotEnabled {
		o.SnapshotEvery = c.EventSourcing.SnapshotFrequency
	}
	return o
}

// FeedFrom builds the live feed of GET /v1/subscribe on store, as the [writer] section asks:
// FEED_BUFFER events of buffer per subscriber, FEED_MAX_SUBSCRIBERS at once; its metrics go to
// reg. The store's OnAppend should call its Wake, and Close ends every stream.
func FeedFrom(store events.AllReader, c config.Writer, log *slog.Logger, reg prometheus.Registerer) (*feed.Feed, error) {
	f, err := feed.New(feed.Config{Source: store, Buffer: c.FeedBuffer, MaxSubscribers: c.FeedMaxSubscribers,
		Logger: log, Metrics: feed.NewMetrics(reg)})
	if err != nil {
		return nil, fmt.Errorf("live feed: %w", err)
	}
	return f, nil
}

// CommandLimit is the limiter of each principal's commands that the [writer] section asks
// for: COMMAND_RATE_LIMIT a second, COMMAND_RATE_BURST at once (none when the rate is 0). Its
// metrics go to reg.
func CommandLimit(c config.Writer, reg prometheus.Registerer) (*ratelimit.Limiter, error) {
	l, err := ratelimit.New(ratelimit.Config{Name: "commands", Rate: float64(c.CommandRateLimit), Burst: c.CommandRateBurst, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("command rate limit: %w", err)
	}
	return l, nil
}

// command refuses every command while event sourcing is disabled (503), and a command whose
// principal is over its rate limit (429), before h reads anything of the request.
func (a *API) command(h httpx.HandlerFunc) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.disabled {
			return httpx.ErrEventSourcingDisabled
		}
		if err := a.limit.Check(r); err != nil {
			return err
		}
		return h(w, r)
	}
}

// IdempotencyKeyTTL is how long a command's Idempotency-Key is remembered; a retry after that
// runs as a new command.
const IdempotencyKeyTTL = 24 * time.Hour

// PruneSnapshots deletes superseded snapshots older than retention (SNAPSHOT_RETENTION_PERIOD),
// on a store that can, and idempotency keys older than IdempotencyKeyTTL, now and then every
// interval, until ctx ends. Run it in its own goroutine.
func (a *API) PruneSnapshots(ctx context.Context, interval, retention time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if p, ok := a.store.(snapshotPruner); ok {
			n, err := p.PruneSnapshots(ctx, retention)
			if !a.pruned(ctx, "snapshots", n, err, "retention", retention) {
				return
			}
		}
		n, err := a.store.PruneIdempotency(ctx, IdempotencyKeyTTL)
		if !a.pruned(ctx, "idempotency keys", n, err, "ttl", IdempotencyKeyTTL) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruned logs how a pruning of what went, with its age limit under key, and reports whether
// ctx is still on.
func (a *API) pruned(ctx context.Context, what string, n int64, err error, key string, limit time.Duration) bool {
	switch {
	case ctx.Err() != nil:
		return false
	case err != nil:
		a.log.Warn("prune "+what, "error", err)
	case n > 0:
		a.log.Info("pruned "+what, "deleted", n, key, limit.String())
	}
	return true
}

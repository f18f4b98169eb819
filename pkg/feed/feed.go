package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// Now, as Filter.After, starts a subscription at the store's head: it receives the events that
// commit from then on.
const Now int64 = -1

// Errors of a subscription: why Subscribe refused it, or why its channel was closed (Err).
var (
	// ErrSlow: the subscriber fell more than its buffer (Config.Buffer) behind, and was
	// dropped rather than let hold up the others or make memory grow.
	ErrSlow = errors.New("feed: the subscriber fell too far behind")
	// ErrClosed: the feed was closed (the process is stopping).
	ErrClosed = errors.New("feed: closed")
	// ErrTooManySubscribers: Config.MaxSubscribers subscriptions already run.
	ErrTooManySubscribers = errors.New("feed: too many subscribers")
)

// Defaults of Config.
const (
	DefaultPoll           = time.Second
	DefaultPage           = 500
	DefaultBuffer         = 256
	DefaultMaxSubscribers = 1000
	// maxBackoff is the longest pause after failed reads.
	maxBackoff = 30 * time.Second
)

// Config configures a Feed. Its zero values mean the defaults.
type Config struct {
	// Source is the store to follow.
	Source events.AllReader
	// Poll is how often the poller reads when nothing wakes it (DefaultPoll).
	Poll time.Duration
	// Page is how many events a read takes at most (DefaultPage); the poller's reads take no
	// more than Buffer, so that a page alone never fills a buffer.
	Page int
	// Buffer is how many events a subscriber may fall behind before it is dropped
	// (DefaultBuffer).
	Buffer int
	// MaxSubscribers is how many subscriptions may run at once (DefaultMaxSubscribers).
	MaxSubscribers int
	// Logger receives the failed reads (slog.Default when nil).
	Logger *slog.Logger
	// Metrics, when set, count the subscribers, the dropped and the refused, and the failed
	// reads.
	Metrics *Metrics
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Source == nil:
		return errors.New("feed: no source")
	case c.Poll < 0, c.Page < 0, c.Buffer < 0, c.MaxSubscribers < 0:
		return errors.New("feed: poll, page, buffer and max subscribers must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.Page == 0 {
		c.Page = DefaultPage
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Feed follows a store's all-stream for its subscribers. It is safe for concurrent use.
type Feed struct {
	cfg  Config
	wake chan struct{}

	// starting serialises the start of a poller, which reads the head.
	starting sync.Mutex

	mu   sync.Mutex
	subs map[*Subscription]struct{}
	// head is the last position the poller handed out (or the store's head when it started).
	head int64
	// gen counts the pollers started; a poller of an older one hands nothing out.
	gen      int
	stopPoll context.CancelFunc // nil while no poller runs
	closed   bool
	// running counts the poller and the catch-ups, which Close waits for.
	running sync.WaitGroup
}

// New returns a Feed on cfg.Source. Nothing runs until the first Subscribe.
func New(cfg Config) (*Feed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Feed{cfg: cfg.withDefaults(), wake: make(chan struct{}, 1), subs: map[*Subscription]struct{}{}}, nil
}

// Wake makes the poller read now rather than at its next poll, if it runs. It never blocks:
// call it when events were appended (the store's OnAppend).
func (f *Feed) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Close ends every subscription (ErrClosed), stops the poller, refuses new subscriptions, and
// returns once everything it ran has stopped.
func (f *Feed) Close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		for s := range f.subs {
			f.end(s, ErrClosed)
		}
		f.stopPoller()
	}
	f.mu.Unlock()
	f.running.Wait()
}

// Subscribe starts a subscription with filter: its channel receives, in position order, every
// event after filter.After (Now: from the store's head) that matches the filter, until ctx
// ends, Close is called on it, or it falls too far behind (ErrSlow). It returns
// ErrTooManySubscribers when Config.MaxSubscribers run already, ErrClosed after Close, and the
// store's error when it cannot read where to start.
func (f *Feed) Subscribe(ctx context.Context, filter Filter) (*Subscription, error) {
	if filter.After < Now {
		return nil, fmt.Errorf("%w: feed: subscribe after %d", events.ErrInvalid, filter.After)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &Subscription{feed: f, c: make(chan events.Envelope, f.cfg.Buffer), cancel: cancel, match: filter.matcher()}
	f.mu.Lock()
	switch {
	case f.closed:
		f.mu.Unlock()
		cancel()
		return nil, ErrClosed
	case len(f.subs) >= f.cfg.MaxSubscribers:
		f.mu.Unlock()
		cancel()
		f.cfg.Metrics.refusedOne()
		return nil, ErrTooManySubscribers
	}
	f.subs[s] = struct{}{}
	f.cfg.Metrics.subscribersAre(len(f.subs))
	f.mu.Unlock()

	if err := f.startPoller(sctx); err != nil {
		f.mu.Lock()
		f.end(s, err)
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.ended {
		return nil, s.err
	}
	s.after = filter.After
	if s.after == Now {
		s.after = f.head
	}
	s.pos = s.after
	if s.pos >= f.head {
		s.live = true
	} else {
		s.catching = true
		f.running.Add(1)
		go f.catchUp(sctx, s)
	}
	s.stopWatch = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	return s, nil
}

// startPoller starts the poller, from the store's head, unless one runs.
func (f *Feed) startPoller(ctx context.Context) error {
	f.starting.Lock()
	defer f.starting.Unlock()
	f.mu.Lock()
	running := f.stopPoll != nil
	f.mu.Unlock()
	if running {
		return nil
	}
	head, err := f.cfg.Source.Head(ctx)
	if err != nil {
		return fmt.Errorf("feed: read the head: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.subs) == 0 {
		return nil // Subscribe finds its subscription ended
	}
	pctx, stop := context.WithCancel(context.Background())
	f.gen++
	f.head, f.stopPoll = head, stop
	f.running.Add(1)
	go f.poll(pctx, f.gen)
	return nil
}

// stopPoller stops the poller, if one runs. The caller holds f.mu.
func (f *Feed) stopPoller() {
	if f.stopPoll != nil {
		f.stopPoll()
		f.stopPoll = nil
		f.gen++
	}
}

// poll reads the store from the head on, every Config.Poll or when woken, until ctx ends.
func (f *Feed) poll(ctx context.Context, gen int) {
	defer f.running.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	pause := f.cfg.Poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-timer.C:
		}
		wait := f.cfg.Poll
		if err := f.round(ctx, gen); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.cfg.Metrics.failedRead()
			f.cfg.Logger.Warn("feed: read the all-stream", "error", err, "retry_in", pause.String())
			wait, pause = pause, min(2*pause, maxBackoff)
		} else {
			pause = f.cfg.Poll
		}
		timer.Reset(wait)
	}
}

// round reads pages from the head and hands them out, until a page is short.
func (f *Feed) round(ctx context.Context, gen int) error {
	for {
		f.mu.Lock()
		after := f.head
		f.mu.Unlock()
		limit := min(f.cfg.Page, f.cfg.Buffer)
		page, err := f.cfg.Source.ReadAll(ctx, events.AllQuery{After: after, Limit: limit})
		if err != nil {
			return err
		}
		f.handOut(gen, page)
		if len(page) < limit {
			return nil
		}
	}
}

// handOut gives each live subscriber the events of page it has not had and wants, dropping
// those whose buffer is full, and moves the head to the page's end.
func (f *Feed) handOut(gen int, page []events.Envelope) {
	if len(page) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return
	}
	for s := range f.subs {
		if s.live {
			f.give(s, page)
		}
	}
	f.head = page[len(page)-1].GlobalPosition
}

// give hands s the events of page after its position that it wants; a full buffer drops it.
// The caller holds f.mu.
func (f *Feed) give(s *Subscription, page []events.Envelope) {
	for i := range page {
		e := &page[i]
		if e.GlobalPosition <= s.pos {
			continue
		}
		if s.match(e) {
			select {
			case s.c <- *e:
			default:
				f.cfg.Metrics.droppedOne()
				f.end(s, ErrSlow)
				return
			}
		}
		s.pos = e.GlobalPosition
	}
}

// catchUp reads the events between s's start and the poller's head for s alone, a page at a
// time, waiting for s to take them, then makes s live.
func (f *Feed) catchUp(ctx context.Context, s *Subscription) {
	defer f.running.Done()
	pos, pause := s.after, f.cfg.Poll
	for ctx.Err() == nil {
		// A short page holds everything up to the store's head, which is at least the
		// poller's head before the read: positions up to that with no event (taken by appends
		// that lost a race or rolled back) are passed too, or an idle feed would never let
		// the subscriber join.
		f.mu.Lock()
		h0 := f.head
		f.mu.Unlock()
		page, err := f.cfg.Source.ReadAll(ctx, events.AllQuery{After: pos, Limit: f.cfg.Page})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			f.cfg.Metrics.failedRead()
			f.cfg.Logger.Warn("feed: read the all-stream for a subscriber", "error", err, "after", pos, "retry_in", pause.String())
			sleep(ctx, pause)
			pause = min(2*pause, maxBackoff)
			continue
		}
		pause = f.cfg.Poll
		if !f.pass(ctx, s, page, &pos) {
			break
		}
		if len(page) == f.cfg.Page {
			continue
		}
		pos = max(pos, h0)
		if f.joined(s, pos) {
			return
		}
		if len(page) == 0 {
			// The poller read further than the store shows yet: an append is open.
			sleep(ctx, min(f.cfg.Poll, 50*time.Millisecond))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.catching = false
	if s.ended {
		close(s.c)
	} else {
		f.end(s, ctx.Err())
	}
}

// pass hands s the events of page that it wants, waiting for room in its buffer, and moves
// pos past them; false when ctx ended first.
func (f *Feed) pass(ctx context.Context, s *Subscription, page []events.Envelope, pos *int64) bool {
	for i := range page {
		if s.match(&page[i]) {
			select {
			case s.c <- page[i]:
			case <-ctx.Done():
				return false
			}
		}
		*pos = page[i].GlobalPosition
	}
	return true
}

// joined makes s live if pos reached the poller's head, and reports whether it did.
func (f *Feed) joined(s *Subscription, pos int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.ended || pos < f.head {
		return false
	}
	s.catching, s.live, s.pos = false, true, pos
	return true
}

// end ends s with err: it leaves the feed, and its channel is closed, by the catch-up if one
// still sends on it. The poller stops with the last subscription. The caller holds f.mu.
func (f *Feed) end(s *Subscription, err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	delete(f.subs, s)
	f.cfg.Metrics.subscribersAre(len(f.subs))
	s.cancel()
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if !s.catching {
		close(s.c)
	}
	if len(f.subs) == 0 {
		f.stopPoller()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

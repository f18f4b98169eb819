// Package ratelimit limits how fast each caller of an HTTP API may go: a token bucket
// (golang.org/x/time/rate) per principal, the caller that internal/auth authenticated, keyed
// by its kind, issuer and name. A request over its principal's limit is refused with an
// *httpx.RateLimitError (429 rate_limited, with Retry-After) before its handler runs.
//
// The set of buckets is bounded whatever callers send: token subjects are unbounded, and every
// new subject of a trusted issuer would otherwise cost memory for good. A bucket is held by a
// hash of its principal, so its size does not depend on the length of a subject or an issuer;
// a bucket idle long enough to have filled up again is dropped, since a new one would be the
// same; and past Config.MaxPrincipals the bucket used least recently is dropped, which gives
// that principal a full bucket again the next time (counted in
// annals_rate_limit_evicted_total).
//
// A Limiter counts in its own process only: N processes behind a load balancer let a
// principal through up to N times the rate.
//
// It must never keep, log or label anything of a principal but a hash: the metrics are
// labelled by the limit's name alone.
package ratelimit

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
)

// DefaultMaxPrincipals is how many principals a Limiter holds a bucket for, unless its
// Config says otherwise: about 2.5 MB of buckets.
const DefaultMaxPrincipals = 10000

// Config configures a Limiter. The zero value limits nothing.
type Config struct {
	// Name names the limit in the metrics' limit label and in the refusal's message, such as
	// "commands".
	Name string
	// Rate is how many requests per second a principal may make; 0 (or less) turns the limit
	// off.
	Rate float64
	// Burst is how many requests a principal may make at once, after a quiet spell; 0 means
	// Rate, rounded up.
	Burst int
	// MaxPrincipals bounds the principals a bucket is held for (DefaultMaxPrincipals when 0).
	MaxPrincipals int
	// Registerer receives the limit's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Limiter limits the requests of each principal. Its methods are safe for concurrent use; a
// nil *Limiter limits nothing.
type Limiter struct {
	name  string
	limit rate.Limit
	burst int
	max   int
	// idle is how long an empty bucket takes to fill up: a bucket idle that long is the same
	// as a new one.
	idle time.Duration
	now  func() time.Time

	mu      sync.Mutex
	buckets map[key]*list.Element
	lru     list.List // of *bucket, the one used most recently first

	refused prometheus.Counter
	held    prometheus.Gauge
	evicted prometheus.Counter
}

// key is the SHA-256 of a principal's kind, issuer and name.
type key [sha256.Size]byte

type bucket struct {
	key  key
	lim  *rate.Limiter
	seen time.Time // the last request
}

// New returns the Limiter of cfg, and registers its metrics: annals_rate_limited_total,
// annals_rate_limit_principals and annals_rate_limit_evicted_total, labelled with the
// limit's name.
func New(cfg Config) (*Limiter, error) {
	l := &Limiter{name: cfg.Name, max: cfg.MaxPrincipals, burst: cfg.Burst, now: time.Now, buckets: map[key]*list.Element{}}
	if cfg.Rate > 0 {
		l.limit = rate.Limit(cfg.Rate)
	}
	if l.max <= 0 {
		l.max = DefaultMaxPrincipals
	}
	if l.burst <= 0 {
		l.burst = max(int(math.Ceil(float64(l.limit))), 1)
	}
	if l.limit > 0 {
		l.idle = time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	}
	labels := prometheus.Labels{"limit": cfg.Name}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "annals_rate_limited_total", ConstLabels: labels,
		Help: "Requests refused with 429 because their principal was over its rate limit, by limit.",
	})
	l.held = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "annals_rate_limit_principals", ConstLabels: labels,
		Help: "Principals whose rate limit bucket is held in memory, by limit; at most the limit's cap.",
	})
	l.evicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "annals_rate_limit_evicted_total", ConstLabels: labels,
		Help: "Buckets dropped before they had filled up because the cap of principals was reached, by limit: those principals started afresh.",
	})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{l.refused, l.held, l.evicted} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// Enabled reports whether l limits anything.
func (l *Limiter) Enabled() bool { return l != nil && l.limit > 0 }

// Allow takes one request of p from its bucket. When the bucket is empty it takes nothing and
// returns how long p must wait for the next request to pass.
func (l *Limiter) Allow(p auth.Principal) (ok bool, wait time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	k := keyOf(p)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(k, now)
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	l.refused.Inc()
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.limit) * float64(time.Second))
}

// Check takes one request of r's principal (internal/auth put it in the context) and returns
// an *httpx.RateLimitError when it is over its limit. A request without a principal is not
// limited: the services authenticate every request they serve (internal/app), so only a
// handler tested on its own has none.
func (l *Limiter) Check(r *http.Request) error {
	if !l.Enabled() {
		return nil
	}
	p, ok := auth.FromContext(r.Context())
	if !ok {
		return nil
	}
	if ok, wait := l.Allow(p); !ok {
		return &httpx.RateLimitError{Limit: l.name, RetryAfter: wait}
	}
	return nil
}

// Len is how many principals l holds a bucket for.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// bucket returns k's bucket, new or not, as the one used most recently. It first drops the
// buckets that have been idle long enough to be full, then, when a new bucket would exceed
// the cap, the one used least recently. l.mu is held.
func (l *Limiter) bucket(k key, now time.Time) *bucket {
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*bucket).seen) >= l.idle; e = l.lru.Back() {
		l.drop(e)
	}
	if e, ok := l.buckets[k]; ok {
		b := e.Value.(*bucket)
		b.seen = now
		l.lru.MoveToFront(e)
		return b
	}
	if len(l.buckets) >= l.max {
		l.drop(l.lru.Back())
		l.evicted.Inc()
	}
	b := &bucket{key: k, lim: rate.NewLimiter(l.limit, l.burst), seen: now}
	l.buckets[k] = l.lru.PushFront(b)
	l.held.Set(float64(len(l.buckets)))
	return b
}

func (l *Limiter) drop(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
	l.held.Set(float64(len(l.buckets)))
}

// keyOf hashes p's kind, issuer and name, each after its length, so that no two principals
// share a key.
func keyOf(p auth.Principal) key {
	h := sha256.New()
	for _, s := range []string{p.Kind, p.Issuer, p.Name} {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	var k key
	h.Sum(k[:0])
	return k
}

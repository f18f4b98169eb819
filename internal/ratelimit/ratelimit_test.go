package ratelimit_test

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/ratelimit"
)

// clock is a time the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func newLimiter(tb testing.TB, cfg ratelimit.Config) (*ratelimit.Limiter, *clock, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Name == "" {
		cfg.Name = "commands"
	}
	l, err := ratelimit.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c := newClock()
	l.SetClock(c.now)
	return l, c, reg
}

func key(name string) auth.Principal { return auth.Principal{Kind: auth.KindAPIKey, Name: name} }

func TestLimiter_Allow(t *testing.T) {
	l, c, reg := newLimiter(t, ratelimit.Config{Rate: 2, Burst: 3})
	p := key("ci")
	for i := range 3 {
		if ok, _ := l.Allow(p); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow(p)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: ok %v, wait %s; want refused, 500ms", ok, wait)
	}
	c.add(499 * time.Millisecond)
	if ok, wait := l.Allow(p); ok || wait != time.Millisecond {
		t.Fatalf("1ms early: ok %v, wait %s; want refused, 1ms", ok, wait)
	}
	c.add(time.Millisecond)
	if ok, _ := l.Allow(p); !ok {
		t.Fatal("refused after the wait it was told")
	}
	if ok, _ := l.Allow(p); ok {
		t.Fatal("a second request passed on one token")
	}
	want := `
# HELP annals_rate_limited_total Requests refused with 429 because their principal was over its rate limit, by limit.
# TYPE annals_rate_limited_total counter
annals_rate_limited_total{limit="commands"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annals_rate_limited_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Kind, issuer and name together make the principal: none of them alone shares a bucket.
func TestLimiter_Principals(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1})
	principals := []auth.Principal{
		{Kind: auth.KindAPIKey, Name: "alice"},
		{Kind: auth.KindToken, Name: "alice", Issuer: "https://one.example"},
		{Kind: auth.KindToken, Name: "alice", Issuer: "https://two.example"},
		{Kind: auth.KindToken, Name: "example/alice", Issuer: "https://one."},
		{Kind: auth.KindToken, Name: "", Issuer: "https://one.examplealice"},
		{Kind: auth.KindAnonymous, Name: auth.KindAnonymous},
	}
	for _, p := range principals {
		if ok, _ := l.Allow(p); !ok {
			t.Errorf("%+v refused on its first request: it shares a bucket", p)
		}
	}
	for _, p := range principals {
		if ok, _ := l.Allow(p); ok {
			t.Errorf("%+v passed twice on a burst of 1", p)
		}
	}
	if got := l.Len(); got != len(principals) {
		t.Errorf("%d buckets, want %d", got, len(principals))
	}
}

// However many principals call, the limiter holds at most MaxPrincipals buckets, and a
// principal that keeps calling keeps its bucket, so that a flood of new subjects does not
// reset it.
func TestLimiter_Cap(t *testing.T) {
	const capacity, callers = 100, 50000
	l, _, reg := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 2, MaxPrincipals: capacity})
	hot := auth.Principal{Kind: auth.KindToken, Issuer: "https://issuer.example", Name: "hot"}
	long := strings.Repeat("x", 1000)
	hotPassed := 0
	for i := range callers {
		p := auth.Principal{Kind: auth.KindToken, Issuer: "https://issuer.example", Name: long + strconv.Itoa(i)}
		if ok, _ := l.Allow(p); !ok {
			t.Fatalf("new principal %d refused", i)
		}
		if i%10 == 0 {
			if ok, _ := l.Allow(hot); ok {
				hotPassed++
			}
		}
		if n := l.Len(); n > capacity {
			t.Fatalf("%d buckets after %d principals, cap %d", n, i+1, capacity)
		}
	}
	if hotPassed != 2 {
		t.Errorf("the hot principal passed %d times with a burst of 2 and a still clock", hotPassed)
	}
	if got := value(t, reg, "annals_rate_limit_principals"); got != capacity {
		t.Errorf("annals_rate_limit_principals %v, want %d", got, capacity)
	}
	if got, want := value(t, reg, "annals_rate_limit_evicted_total"), float64(callers+1-capacity); got != want {
		t.Errorf("annals_rate_limit_evicted_total %v, want %v", got, want)
	}
}

// value reads the one series of a gauge or counter of reg.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A bucket idle long enough to be full again is dropped at the next request: it would be
// the same as a new one.
func TestLimiter_IdleBucketsDropped(t *testing.T) {
	l, c, _ := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 20}) // full again 2s after emptying
	for i := range 500 {
		l.Allow(key("caller-" + strconv.Itoa(i)))
	}
	c.add(1999 * time.Millisecond)
	l.Allow(key("late"))
	if got := l.Len(); got != 501 {
		t.Fatalf("%d buckets before the idle time, want 501", got)
	}
	c.add(time.Millisecond)
	l.Allow(key("later"))
	if got := l.Len(); got != 2 {
		t.Errorf("%d buckets once the first 500 were idle for 2s, want 2 (late and later)", got)
	}
}

func TestLimiter_Off(t *testing.T) {
	var none *ratelimit.Limiter
	l, _, _ := newLimiter(t, ratelimit.Config{})
	for _, l := range []*ratelimit.Limiter{none, l} {
		for range 100 {
			if ok, _ := l.Allow(key("a")); !ok {
				t.Fatal("refused without a limit")
			}
		}
		if l.Enabled() || l.Len() != 0 {
			t.Errorf("Enabled %v, Len %d without a limit", l.Enabled(), l.Len())
		}
	}
}

// Burst defaults to the rate, rounded up, and at least 1.
func TestLimiter_DefaultBurst(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want int
	}{{0.2, 1}, {1, 1}, {2.5, 3}, {50, 50}} {
		l, _, _ := newLimiter(t, ratelimit.Config{Rate: tc.rate})
		got := 0
		for {
			ok, _ := l.Allow(key("a"))
			if !ok {
				break
			}
			got++
		}
		if got != tc.want {
			t.Errorf("rate %v: a burst of %d, want %d", tc.rate, got, tc.want)
		}
	}
}

func TestLimiter_Check(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Rate: 0.5, Burst: 1})
	r := httptest.NewRequest("POST", "/v1/users", nil)
	r = r.WithContext(auth.WithPrincipal(r.Context(), key("ci")))
	if err := l.Check(r); err != nil {
		t.Fatalf("first request: %v", err)
	}
	var limited *httpx.RateLimitError
	if err := l.Check(r); !errors.As(err, &limited) || limited.Limit != "commands" || limited.RetryAfter != 2*time.Second {
		t.Fatalf("second request: %v, want a RateLimitError of commands, retry after 2s", err)
	}
	if err := l.Check(httptest.NewRequest("POST", "/v1/users", nil)); err != nil {
		t.Errorf("a request without a principal: %v", err)
	}
}

// Concurrent requests of one principal pass exactly Burst times while the clock stands
// still, whatever else calls at the same time.
func TestLimiter_Concurrent(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 7, MaxPrincipals: 50})
	var passed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if ok, _ := l.Allow(key("shared")); ok {
					passed.Add(1)
				}
				l.Allow(key("own-" + strconv.Itoa(g) + "-" + strconv.Itoa(i%3)))
			}
		})
	}
	wg.Wait()
	if got := passed.Load(); got != 7 {
		t.Errorf("%d requests of one principal passed, want its burst of 7", got)
	}
}

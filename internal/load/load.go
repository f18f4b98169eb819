// Package load drives the writer's HTTP API with a realistic mix of commands: users created,
// profiles updated, users deactivated, orders created, items added and removed, orders
// confirmed, cancelled and shipped. It runs open loop (commands start at a fixed rate,
// whatever the latency, and each latency counts from the command's scheduled start, so a
// slow server cannot hide its queueing) or closed loop (a fixed number of clients, each
// sending its next command when the last one answered), and reports throughput, latency
// percentiles and errors by code.
//
// Every client owns the users and orders it created, so a stream's commands never race one
// another and every command is valid for the state its client knows; a rule violation or a
// version conflict in the report is therefore a real failure.
package load

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a run.
type Config struct {
	// BaseURL is the writer's address, such as http://127.0.0.1:8080.
	BaseURL string
	// Rate, when above zero, starts that many commands per second (open loop) with at most
	// Concurrency in flight; zero runs closed loop with Concurrency clients.
	Rate        float64
	Concurrency int           // 8
	Duration    time.Duration // 10 s
	// Progress, when set, gets a line a second and none at the end.
	Progress io.Writer
	Client   *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>": an API key with the
	// commands scope, or an OIDC token with it.
	Token string
	// IdempotencyKeys sends each command with an Idempotency-Key of its own, as a client that
	// retries should: the writer then records the events and the key's response in one
	// transaction.
	IdempotencyKeys bool
	// Seed makes the mix of commands repeatable (0: random).
	Seed uint64
	// OnCommand, when set, is called after every successful command with the stream it
	// changed and the stream's version after it (for end-to-end latency probes).
	OnCommand func(streamID string, version int64, accepted time.Time)
}

// Result is what a run measured.
type Result struct {
	Commands   int            `json:"commands"`
	Errors     map[string]int `json:"errors"` // by HTTP status or "transport"
	Missed     int            `json:"missed"` // open loop: starts that found every client busy
	Elapsed    time.Duration  `json:"elapsed_ns"`
	Throughput float64        `json:"throughput"` // successful commands per second
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
	ByCommand  map[string]int `json:"by_command"`
}

// String is the summary line.
func (r Result) String() string {
	errs := 0
	for _, n := range r.Errors {
		errs += n
	}
	s := fmt.Sprintf("%d commands in %s: %.0f/s, latency p50 %s p90 %s p99 %s max %s, %d errors",
		r.Commands, r.Elapsed.Round(time.Millisecond), r.Throughput, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), errs)
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s += " ("
		for i, k := range keys {
			if i > 0 {
				s += ", "
			}
			s += fmt.Sprintf("%s: %d", k, r.Errors[k])
		}
		s += ")"
	}
	if r.Missed > 0 {
		s += fmt.Sprintf(", %d starts missed (every client busy)", r.Missed)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// Run drives the writer until cfg.Duration has passed or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.BaseURL == "" {
		return Result{}, errors.New("load: no writer URL")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Rate < 0 {
		return Result{}, fmt.Errorf("load: rate %v is negative", cfg.Rate)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency},
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rec := &recorder{errors: map[string]int{}, byCommand: map[string]int{}}
	// The deadline stops new commands; commands in flight finish and are counted.
	run, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	stopProgress := rec.progress(cfg.Progress, start)
	clients := make([]*client, cfg.Concurrency)
	for i := range clients {
		clients[i] = &client{cfg: &cfg, rng: rand.New(rand.NewPCG(seed, uint64(i))), rec: rec, id: i}
	}
	var wg sync.WaitGroup
	if cfg.Rate == 0 {
		for _, c := range clients {
			wg.Go(func() {
				for run.Err() == nil {
					c.next(ctx, time.Now())
				}
			})
		}
	} else {
		idle := make(chan *client, len(clients))
		for _, c := range clients {
			idle <- c
		}
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		next := start
	loop:
		for {
			next = next.Add(interval)
			t := time.NewTimer(time.Until(next))
			select {
			case <-run.Done():
				t.Stop()
				break loop
			case <-t.C:
			}
			select {
			case c := <-idle:
				scheduled := next
				wg.Go(func() {
					c.next(ctx, scheduled)
					idle <- c
				})
			default:
				rec.missed.Add(1)
			}
		}
	}
	wg.Wait()
	stopProgress()
	return rec.result(time.Since(start)), nil
}

// recorder collects the outcome of every command.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    map[string]int
	byCommand map[string]int
	done      atomic.Int64
	failed    atomic.Int64
	missed    atomic.Int64
}

func (r *recorder) ok(command string, d time.Duration) {
	r.done.Add(1)
	r.mu.Lock()
	r.latencies = append(r.latencies, d)
	r.byCommand[command]++
	r.mu.Unlock()
}

func (r *recorder) fail(code string) {
	r.failed.Add(1)
	r.mu.Lock()
	r.errors[code]++
	r.mu.Unlock()
}

func (r *recorder) percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func (r *recorder) result(elapsed time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	res := Result{
		Commands: len(l), Errors: r.errors, Missed: int(r.missed.Load()), Elapsed: elapsed,
		Throughput: float64(len(l)) / elapsed.Seconds(), ByCommand: r.byCommand,
		P50: r.percentile(l, 0.50), P90: r.percentile(l, 0.90), P99: r.percentile(l, 0.99),
	}
	if len(l) > 0 {
		res.Max = l[len(l)-1]
	}
	return res
}

// progress prints a line a second until the returned function is called.
func (r *recorder) progress(w io.Writer, start time.Time) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := r.done.Load()
				fmt.Fprintf(w, "load: %5.0fs  %8d commands  %6d/s  %d errors\n", time.Since(start).Seconds(), n, n-last, r.failed.Load())
				last = n
			}
		}
	}()
	return func() { close(stop); <-done }
}

// client is one sender and the users and orders it created.
type client struct {
	cfg    *Config
	rng    *rand.Rand
	rec    *recorder
	id     int
	seq    int
	users  []*user
	orders []*order
}

type user struct {
	id string
}

type order struct {
	id     string
	userID string
	status string // pending, confirmed
	items  []string
}

// next sends one command, chosen by weight among those the client's state allows.
func (c *client) next(ctx context.Context, scheduled time.Time) {
	type choice struct {
		weight int
		run    func(ctx context.Context) (string, string, int64, error)
	}
	var pending, confirmed []*order
	for _, o := range c.orders {
		switch o.status {
		case "pending":
			pending = append(pending, o)
		case "confirmed":
			confirmed = append(confirmed, o)
		}
	}
	choices := []choice{{8, c.createUser}}
	if len(c.users) > 0 {
		choices = append(choices, choice{10, c.updateUser}, choice{15, c.createOrder})
		if len(c.users) > 20 {
			choices = append(choices, choice{1, c.deactivateUser})
		}
	}
	if len(pending) > 0 {
		choices = append(choices, choice{30, c.addItem}, choice{8, c.removeItem}, choice{10, c.confirmOrder}, choice{3, c.cancelOrder})
	}
	if len(confirmed) > 0 {
		choices = append(choices, choice{8, c.shipOrder}, choice{1, c.cancelOrder})
	}
	total := 0
	for _, ch := range choices {
		total += ch.weight
	}
	pick := c.rng.IntN(total)
	for _, ch := range choices {
		if pick < ch.weight {
			name, stream, version, err := ch.run(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return // the caller gave up during the request: not the server's failure
				}
				var he *httpError
				if errors.As(err, &he) {
					c.rec.fail(strconv.Itoa(he.status))
				} else {
					c.rec.fail("transport")
				}
				return
			}
			accepted := time.Now()
			c.rec.ok(name, accepted.Sub(scheduled))
			if c.cfg.OnCommand != nil {
				c.cfg.OnCommand(stream, version, accepted)
			}
			return
		}
		pick -= ch.weight
	}
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// written is the writer's answer to a command.
type written struct {
	ID       string `json:"id"`
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
}

func (c *client) send(ctx context.Context, method, path string, body any) (written, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return written{}, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, r)
	if err != nil {
		return written{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	if c.cfg.IdempotencyKeys && method != http.MethodGet {
		req.Header.Set("Idempotency-Key", crand.Text())
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return written{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return written{}, err
	}
	if resp.StatusCode/100 != 2 {
		return written{}, &httpError{status: resp.StatusCode, body: string(b)}
	}
	var w written
	if err := json.Unmarshal(b, &w); err != nil {
		return written{}, fmt.Errorf("answer of %s %s: %w", method, path, err)
	}
	return w, nil
}

func (c *client) name() string {
	c.seq++
	return fmt.Sprintf("c%d-%d", c.id, c.seq)
}

func (c *client) createUser(ctx context.Context) (string, string, int64, error) {
	n := c.name()
	w, err := c.send(ctx, "POST", "/v1/users", map[string]string{"email": n + "@load.example", "name": "Load " + n})
	if err == nil {
		c.users = append(c.users, &user{id: w.ID})
	}
	return "create_user", w.StreamID, w.Version, err
}

func (c *client) updateUser(ctx context.Context) (string, string, int64, error) {
	u := c.users[c.rng.IntN(len(c.users))]
	w, err := c.send(ctx, "PATCH", "/v1/users/"+u.id, map[string]string{"name": "Renamed " + c.name()})
	return "update_user", w.StreamID, w.Version, err
}

func (c *client) deactivateUser(ctx context.Context) (string, string, int64, error) {
	i := c.rng.IntN(len(c.users))
	u := c.users[i]
	w, err := c.send(ctx, "POST", "/v1/users/"+u.id+"/deactivate", map[string]string{"reason": "load test"})
	if err == nil {
		c.users = slices.Delete(c.users, i, i+1) // no more orders for them
	}
	return "deactivate_user", w.StreamID, w.Version, err
}

func (c *client) item() map[string]any {
	return map[string]any{"id": c.name(), "name": "Item", "price_cents": 100 + c.rng.IntN(9900), "quantity": 1 + c.rng.IntN(3)}
}

func (c *client) createOrder(ctx context.Context) (string, string, int64, error) {
	u := c.users[c.rng.IntN(len(c.users))]
	items := []map[string]any{c.item()}
	w, err := c.send(ctx, "POST", "/v1/orders", map[string]any{"user_id": u.id, "items": items})
	if err == nil {
		c.orders = append(c.orders, &order{id: w.ID, userID: u.id, status: "pending", items: []string{items[0]["id"].(string)}})
	}
	return "create_order", w.StreamID, w.Version, err
}

func (c *client) pick(status string) *order {
	var cands []*order
	for _, o := range c.orders {
		if o.status == status {
			cands = append(cands, o)
		}
	}
	return cands[c.rng.IntN(len(cands))]
}

func (c *client) addItem(ctx context.Context) (string, string, int64, error) {
	o := c.pick("pending")
	it := c.item()
	w, err := c.send(ctx, "POST", "/v1/orders/"+o.id+"/items", it)
	if err == nil {
		o.items = append(o.items, it["id"].(string))
	}
	return "add_item", w.StreamID, w.Version, err
}

func (c *client) removeItem(ctx context.Context) (string, string, int64, error) {
	o := c.pick("pending")
	if len(o.items) < 2 {
		return c.addItem(ctx) // keep an item, so that the order can still be confirmed
	}
	i := c.rng.IntN(len(o.items))
	w, err := c.send(ctx, "DELETE", "/v1/orders/"+o.id+"/items/"+o.items[i], nil)
	if err == nil {
		o.items = slices.Delete(o.items, i, i+1)
	}
	return "remove_item", w.StreamID, w.Version, err
}

func (c *client) confirmOrder(ctx context.Context) (string, string, int64, error) {
	o := c.pick("pending")
	w, err := c.send(ctx, "POST", "/v1/orders/"+o.id+"/confirm", nil)
	if err == nil {
		o.status = "confirmed"
	}
	return "confirm_order", w.StreamID, w.Version, err
}

func (c *client) cancelOrder(ctx context.Context) (string, string, int64, error) {
	var cands []*order
	for _, o := range c.orders {
		if o.status == "pending" || o.status == "confirmed" {
			cands = append(cands, o)
		}
	}
	o := cands[c.rng.IntN(len(cands))]
	w, err := c.send(ctx, "POST", "/v1/orders/"+o.id+"/cancel", map[string]string{"reason": "load test"})
	if err == nil {
		c.forget(o)
	}
	return "cancel_order", w.StreamID, w.Version, err
}

func (c *client) shipOrder(ctx context.Context) (string, string, int64, error) {
	o := c.pick("confirmed")
	w, err := c.send(ctx, "POST", "/v1/orders/"+o.id+"/ship", nil)
	if err == nil {
		c.forget(o)
	}
	return "ship_order", w.StreamID, w.Version, err
}

// forget drops an order that takes no more commands.
func (c *client) forget(o *order) {
	c.orders = slices.DeleteFunc(c.orders, func(x *order) bool { return x == o })
}

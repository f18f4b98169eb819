//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// The projector's tests: the writer and the projector run as processes of their own in a
// fault environment (a fresh schema, topics of their own), a workload of commands goes to the
// writer over HTTP, and the test keeps its own model of what those commands did. Once the
// projector has caught up, its API must answer exactly that model, whatever happened to it in
// between: SIGKILLs, a second member joining its group, a rebuild, a poisoned stream. Every
// event must have been applied exactly once (one inbox row per event).

// projectorInbox matches the name the projector records applied events under in annals_inbox:
// its consumer group, cfg.ConsumerGroup("projector"), whose prefix is the test's own.
const projectorInbox = "%-projector"

// fullWorkload is the workload of the model-equality and SIGKILL tests: 1,000 streams, 20,000
// events.
var fullWorkload = workload{users: 250, ordersPerUser: 3, events: 20_000, clients: 8}

// ---------------------------------------------------------------- binaries and services

// binaries are the programs the tests run, built once per test binary.
type binaries struct{ writer, projector, annals string }

var built struct {
	once sync.Once
	dir  string
	bins binaries
	err  error
}

// buildBinaries builds the writer, the projector and the admin CLI, once per test binary,
// into a folder that TestMain removes.
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	root := repoRoot(t)
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "annals-stack-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./services/writer", "./services/projector", "./cmd/annals")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.bins = binaries{writer: filepath.Join(dir, "writer"), projector: filepath.Join(dir, "projector"), annals: filepath.Join(dir, "annals")}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bins
}

func TestMain(m *testing.M) {
	// Every service these tests start accepts the tests' API key (its processes inherit the
	// environment), and the CLI commands that call them send it.
	os.Setenv("API_KEYS", testenv.APIKeys)
	os.Setenv("ANNALS_API_KEY", testenv.APIKey)
	// That one key drives every workload, harder than one principal may by default.
	os.Setenv("COMMAND_RATE_LIMIT", "0")
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// httpc is the tests' HTTP client: enough idle connections for the workload's clients.
var httpc = &http.Client{
	Timeout:   time.Minute, // above the longest read-your-writes wait the checks ask for
	Transport: testenv.Authorizing(&http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}),
}

// service is a service process with its HTTP address.
type service struct {
	*process
	url string
}

// startService starts a service of the deployment listening on addr (host:port), with
// MIGRATE_ON_START=true and JSON logs, and waits until /readyz answers 200.
func startService(t *testing.T, bin string, e *faultEnv, name, addr string) *service {
	t.Helper()
	vars := maps.Clone(e.vars)
	vars["HTTP_ADDR"] = addr
	vars["MIGRATE_ON_START"] = "true"
	vars["LOG_FORMAT"] = "json"
	s := &service{process: startProcess(t, bin, nil, vars, name), url: "http://" + addr}
	t.Cleanup(func() {
		if t.Failed() {
			logWarnings(t, s.process)
		}
		// Gracefully: a consumer leaves its group, rather than holding up the group's next
		// rebalance (the group names are the same in every deployment on the broker) until
		// the broker drops it after the session timeout (10 s).
		s.stop(30 * time.Second)
	})
	waitEvery(t, time.Minute, 50*time.Millisecond, name+" to answer /readyz", func() bool {
		if s.exited() {
			t.Fatalf("%s exited before it was ready: %v", name, s.err)
		}
		resp, err := httpc.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
}

// deployment is a fault environment with the writer running in it.
type deployment struct {
	env    *faultEnv
	bins   binaries
	writer *service
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	bins := buildBinaries(t)
	e := newFaultEnv(t)
	return &deployment{env: e, bins: bins, writer: startService(t, bins.writer, e, "writer", freeAddr(t))}
}

// startProjector starts a projector process; addr may be that of a projector killed before.
func (d *deployment) startProjector(t *testing.T, name, addr string) *service {
	t.Helper()
	httpc.CloseIdleConnections() // connections to a killed projector on the same address
	return startService(t, d.bins.projector, d.env, name, addr)
}

// get fetches url and returns the status and body.
func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// processedTotal sums annals_consumer_processed_total over the service's partitions: the
// messages its consumer finished (applied, or skipped as seen before).
func processedTotal(t *testing.T, s *service) float64 {
	t.Helper()
	status, body, err := get(context.Background(), s.url+"/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", s.name, status, err)
	}
	var sum float64
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "annals_consumer_processed_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s /metrics: %q: %v", s.name, line, err)
		}
		sum += v
	}
	return sum
}

// ---------------------------------------------------------------- the model

// item is an order line, as the writer takes it and the projector answers it.
type item struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

// userModel is what the commands sent so far made of a user, and what the workload still
// has to send to it.
type userModel struct {
	id                          string
	email, name, status, reason string
	version                     int64 // -1 until created
	orders                      []*orderModel

	left       int  // commands still to send
	deactivate bool // the last of them deactivates the user
}

// orderModel is what the commands sent so far made of an order, and what is still to come.
type orderModel struct {
	id                            string
	user                          *userModel
	status, reason                string
	items                         []item
	total                         int64
	version                       int64 // -1 until created
	confirmed, cancelled, shipped bool  // the events behind confirmed_at, cancelled_at, shipped_at happened

	left    int      // events still to append
	mods    int      // of which item changes while pending, after the creation
	outcome []string // and then these: confirm, ship, cancel
	sku     int      // the number of the next item id
}

// model is the test's own account of the read models: every user and order and what the
// writer said about them.
type model struct {
	users  []*userModel
	orders []*orderModel
}

// workload describes the commands of a run: users, each with ordersPerUser orders; events, the
// number of events of all those streams together (every command that succeeds appends one);
// clients, the number of concurrent HTTP clients sending them, each owning a disjoint set of
// users and their orders, so that each stream's commands go in a fixed order.
type workload struct {
	users, ordersPerUser, events, clients int
}

// plan draws the streams and how many events each gets: users 2 to 11 (about one in ten ends
// deactivated), orders the rest, each one its creation, item changes while pending and an
// outcome (still pending, confirmed, shipped, cancelled before or after its confirmation).
func (w workload) plan(rng *rand.Rand) *model {
	m := &model{}
	userEvents := 0
	for range w.users {
		u := &userModel{id: uuid.NewString(), version: -1, left: 2 + rng.IntN(10)}
		u.deactivate = rng.IntN(10) == 0
		userEvents += u.left
		m.users = append(m.users, u)
		for range w.ordersPerUser {
			o := &orderModel{id: uuid.NewString(), user: u, version: -1}
			u.orders = append(u.orders, o)
			m.orders = append(m.orders, o)
		}
	}
	rest := w.events - userEvents
	if rest < len(m.orders) {
		panic(fmt.Sprintf("workload: %d events cannot cover %d users and %d orders", w.events, w.users, len(m.orders)))
	}
	base := rest / len(m.orders)
	for _, o := range m.orders {
		o.left = max(1, base/2+rng.IntN(base+1))
		rest -= o.left
	}
	for rest != 0 { // to the exact total
		o := m.orders[rng.IntN(len(m.orders))]
		switch {
		case rest > 0:
			o.left++
			rest--
		case o.left > 1:
			o.left--
			rest++
		}
	}
	outcomes := []struct {
		steps  []string
		weight int
	}{{nil, 15}, {[]string{"confirm"}, 15}, {[]string{"confirm", "ship"}, 35}, {[]string{"cancel"}, 20}, {[]string{"confirm", "cancel"}, 15}}
	for _, o := range m.orders {
		for {
			n := rng.IntN(100)
			i := 0
			for ; n >= outcomes[i].weight; i++ {
				n -= outcomes[i].weight
			}
			if len(outcomes[i].steps) <= o.left-1 {
				o.outcome = outcomes[i].steps
				break
			}
		}
		o.mods = o.left - 1 - len(o.outcome)
	}
	return m
}

// events is the number of events the model's streams hold.
func (m *model) events() int64 {
	var n int64
	for _, u := range m.users {
		n += u.version + 1
	}
	for _, o := range m.orders {
		n += o.version + 1
	}
	return n
}

// run is a workload being sent.
type run struct {
	m       *model
	sent    atomic.Int64 // events appended so far
	refused atomic.Int64 // commands the writer refused, as it should have
	done    chan struct{}
	err     error // the first failure; set before done is closed
	took    time.Duration
	errOnce sync.Once
	cancel  context.CancelFunc
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() { r.err = err; r.cancel() })
}

func (r *run) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// failure is the run's error once it has ended with one.
func (r *run) failure() error {
	if r.finished() {
		return r.err
	}
	return nil
}

// wait waits for the run to end and fails the test if a command went wrong.
func (r *run) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(within):
		t.Fatalf("the workload did not finish within %v (%d events sent)", within, r.sent.Load())
	}
	if r.err != nil {
		t.Fatalf("workload: %v", r.err)
	}
}

// start plans the workload with a seed of its own (logged) and sends it to the writer in the
// background.
func (w workload) start(t *testing.T, writerURL string) *run {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload: %d users, %d orders, %d events, %d clients, seed %d", w.users, w.users*w.ordersPerUser, w.events, w.clients, seed)
	m := w.plan(rand.New(rand.NewPCG(seed, 0)))
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{m: m, done: make(chan struct{}), cancel: cancel}
	t.Cleanup(func() { cancel(); <-r.done })
	start := time.Now()
	var wg sync.WaitGroup
	for c := range w.clients {
		var users []*userModel
		for i := c; i < len(m.users); i += w.clients {
			users = append(users, m.users[i])
		}
		cl := &writerClient{url: writerURL, rng: rand.New(rand.NewPCG(seed, uint64(c+1))), run: r}
		wg.Go(func() {
			if err := cl.drive(ctx, users); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
		})
	}
	go func() {
		wg.Wait()
		r.took = time.Since(start)
		cancel()
		close(r.done)
	}()
	return r
}

// writerClient sends commands to the writer and keeps the model of the streams it owns.
type writerClient struct {
	url string
	rng *rand.Rand
	run *run
}

// drive sends every command of the users and their orders, picking the next stream at random
// among those that may take a command now: an order once its user exists, a user's
// deactivation once all its orders exist. At the end it checks that a deactivated user can
// place no order.
func (c *writerClient) drive(ctx context.Context, users []*userModel) error {
	var orders []*orderModel
	for _, u := range users {
		orders = append(orders, u.orders...)
	}
	type pick struct {
		u *userModel
		o *orderModel
	}
	var ready []pick
	for ctx.Err() == nil {
		ready = ready[:0]
		for _, u := range users {
			if u.left > 0 && (u.version < 0 || u.left > 1 || !u.deactivate ||
				!slices.ContainsFunc(u.orders, func(o *orderModel) bool { return o.version < 0 })) {
				ready = append(ready, pick{u: u})
			}
		}
		for _, o := range orders {
			if o.left > 0 && o.user.version >= 0 {
				ready = append(ready, pick{o: o})
			}
		}
		if len(ready) == 0 {
			break
		}
		var err error
		if p := ready[c.rng.IntN(len(ready))]; p.u != nil {
			err = c.userStep(ctx, p.u)
			p.u.left--
		} else {
			err = c.orderStep(ctx, p.o)
			p.o.left--
		}
		if err != nil {
			return err
		}
	}
	for _, u := range users {
		if u.status == "deactivated" && ctx.Err() == nil {
			body := map[string]any{"id": uuid.NewString(), "user_id": u.id, "items": []item{c.newItem(&orderModel{})}}
			if err := c.refuse(ctx, "POST", "/v1/orders", body, "user_deactivated"); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

var (
	firstNames = []string{"Ada", "Grace", "Zoë", "Łukasz", "José", "Søren", "Aiko", "Nnamdi", "Ingrid", "Mateo", "Chloé", "Dmitri", "Amara", "Björn", "Priya"}
	lastNames  = []string{"Lovelace", "Hopper", "Ørsted", "Nowak", "García", "Kierkegaard", "Tanaka", "Okafor", "Bergman", "Rossi", "Dubois", "Ivanov", "Mensah", "Borg", "Iyer"}
	products   = []string{"Stoneware mug", "Linen apron", "Walnut board", "Café filter", "Teapot, 1 l", "Bread knife", "Espresso cup ☕", "Oak spoon", "Enamel pot", "Glass jar"}
	reasons    = []string{"customer asked", "duplicate", "payment failed", "changed their mind", "address not served", "fraud check: déjà vu"}
)

func (c *writerClient) newName() string {
	return firstNames[c.rng.IntN(len(firstNames))] + " " + lastNames[c.rng.IntN(len(lastNames))]
}

func (c *writerClient) newEmail(u *userModel) string {
	return fmt.Sprintf("u-%s.%d@example.com", u.id[:8], c.rng.IntN(1_000_000))
}

func (c *writerClient) newReason() string {
	return fmt.Sprintf("%s (#%d)", reasons[c.rng.IntN(len(reasons))], c.rng.IntN(1000))
}

func (c *writerClient) newItem(o *orderModel) item {
	o.sku++
	return item{ID: fmt.Sprintf("sku-%d", o.sku), Name: products[c.rng.IntN(len(products))],
		PriceCents: int64(c.rng.IntN(50_000)), Quantity: int64(1 + c.rng.IntN(5))}
}

// userStep sends the user's next command and applies it to the model.
func (c *writerClient) userStep(ctx context.Context, u *userModel) error {
	switch {
	case u.version < 0:
		email, name := c.newEmail(u), c.newName()
		if err := c.command(ctx, "POST", "/v1/users", map[string]any{"id": u.id, "email": email, "name": name}, -1, &u.version); err != nil {
			return err
		}
		u.email, u.name, u.status = email, name, "active"
	case u.left == 1 && u.deactivate:
		reason := c.newReason()
		if err := c.command(ctx, "POST", "/v1/users/"+u.id+"/deactivate", map[string]any{"reason": reason}, u.version, &u.version); err != nil {
			return err
		}
		u.status, u.reason = "deactivated", reason
	default:
		body := map[string]any{}
		var name, email string
		switch c.rng.IntN(3) {
		case 0:
			name = c.newName()
		case 1:
			email = c.newEmail(u)
		default:
			name, email = c.newName(), c.newEmail(u)
		}
		if name != "" {
			body["name"] = name
		}
		if email != "" {
			body["email"] = email
		}
		if err := c.command(ctx, "PATCH", "/v1/users/"+u.id, body, u.version, &u.version); err != nil {
			return err
		}
		if name != "" {
			u.name = name
		}
		if email != "" {
			u.email = email
		}
	}
	return nil
}

// orderStep sends the order's next command and applies it to the model. Now and then it first
// sends one that the order's state forbids, which the writer must refuse.
func (c *writerClient) orderStep(ctx context.Context, o *orderModel) error {
	if o.version >= 0 && c.rng.IntN(100) == 0 {
		if err := c.forbidden(ctx, o); err != nil {
			return err
		}
	}
	path := "/v1/orders/" + o.id
	switch {
	case o.version < 0:
		n := c.rng.IntN(4)
		if o.mods == 0 && slices.Contains(o.outcome, "confirm") {
			n = max(n, 1) // confirmable right away
		}
		items := []item{}
		for range n {
			items = append(items, c.newItem(o))
		}
		if err := c.command(ctx, "POST", "/v1/orders", map[string]any{"id": o.id, "user_id": o.user.id, "items": items}, -1, &o.version); err != nil {
			return err
		}
		o.status, o.items = "pending", items
	case o.mods > 0:
		// The last change leaves at least one item when the order is to be confirmed.
		keep := o.mods == 1 && slices.Contains(o.outcome, "confirm") && len(o.items) <= 1
		if len(o.items) > 0 && !keep && c.rng.IntN(100) < 35 {
			i := c.rng.IntN(len(o.items))
			if err := c.command(ctx, "DELETE", path+"/items/"+o.items[i].ID, nil, o.version, &o.version); err != nil {
				return err
			}
			o.items = slices.Delete(slices.Clone(o.items), i, i+1)
		} else {
			it := c.newItem(o)
			if err := c.command(ctx, "POST", path+"/items", it, o.version, &o.version); err != nil {
				return err
			}
			o.items = append(o.items, it)
		}
		o.mods--
	default:
		step := o.outcome[0]
		o.outcome = o.outcome[1:]
		switch step {
		case "confirm":
			if err := c.command(ctx, "POST", path+"/confirm", nil, o.version, &o.version); err != nil {
				return err
			}
			o.status, o.confirmed = "confirmed", true
		case "ship":
			if err := c.command(ctx, "POST", path+"/ship", nil, o.version, &o.version); err != nil {
				return err
			}
			o.status, o.shipped = "shipped", true
		case "cancel":
			reason := c.newReason()
			if err := c.command(ctx, "POST", path+"/cancel", map[string]any{"reason": reason}, o.version, &o.version); err != nil {
				return err
			}
			o.status, o.reason, o.cancelled = "cancelled", reason, true
		}
	}
	o.total = 0
	for _, it := range o.items {
		o.total += it.PriceCents * it.Quantity
	}
	return nil
}

// forbidden sends a command that the order's status does not allow.
func (c *writerClient) forbidden(ctx context.Context, o *orderModel) error {
	path := "/v1/orders/" + o.id
	switch o.status {
	case "pending":
		return c.refuse(ctx, "POST", path+"/ship", nil, "order_not_confirmed")
	case "confirmed":
		return c.refuse(ctx, "POST", path+"/items", item{ID: "sku-late", Name: "Late addition", PriceCents: 1, Quantity: 1}, "order_not_modifiable")
	case "cancelled":
		return c.refuse(ctx, "POST", path+"/confirm", nil, "order_cancelled")
	default:
		return c.refuse(ctx, "POST", path+"/cancel", map[string]any{"reason": "too late"}, "order_already_shipped")
	}
}

// writerError is the body of the writer's error answers.
type writerError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Rule    string `json:"rule"`
	} `json:"error"`
}

func (c *writerClient) send(ctx context.Context, method, path string, body any, ifMatch int64) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch >= 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(ifMatch, 10)))
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// command sends a command that must succeed, conditional on the stream being at ifMatch
// (none when negative), and moves *version on: the writer must answer the version after it.
// Each command appends one event.
func (c *writerClient) command(ctx context.Context, method, path string, body any, ifMatch int64, version *int64) error {
	status, b, err := c.send(ctx, method, path, body, ifMatch)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("%s %s: %d %s", method, path, status, b)
	}
	var resp struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("%s %s: %w: %s", method, path, err, b)
	}
	if resp.Version != *version+1 {
		return fmt.Errorf("%s %s: the writer answered version %d, want %d", method, path, resp.Version, *version+1)
	}
	*version = resp.Version
	c.run.sent.Add(1)
	return nil
}

// refuse sends a command that the writer must refuse with 422 rule_violation and the rule.
func (c *writerClient) refuse(ctx context.Context, method, path string, body any, rule string) error {
	status, b, err := c.send(ctx, method, path, body, -1)
	if err != nil {
		return err
	}
	var e writerError
	if status != http.StatusUnprocessableEntity || json.Unmarshal(b, &e) != nil || e.Error.Code != "rule_violation" || e.Error.Rule != rule {
		return fmt.Errorf("%s %s: %d %s; want 422 rule_violation %s", method, path, status, b, rule)
	}
	c.run.refused.Add(1)
	return nil
}

// ---------------------------------------------------------------- the comparison

// apiUser is a user as the projector's API answers it.
type apiUser struct {
	ID                 string     `json:"id"`
	StreamID           string     `json:"stream_id"`
	Version            int64      `json:"version"`
	Email              string     `json:"email"`
	Name               string     `json:"name"`
	Status             string     `json:"status"`
	DeactivationReason string     `json:"deactivation_reason"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	DeactivatedAt      *time.Time `json:"deactivated_at"`
}

// apiOrder is an order as the projector's API answers it.
type apiOrder struct {
	ID                 string     `json:"id"`
	StreamID           string     `json:"stream_id"`
	Version            int64      `json:"version"`
	UserID             string     `json:"user_id"`
	Status             string     `json:"status"`
	Items              []item     `json:"items"`
	TotalCents         int64      `json:"total_cents"`
	ItemCount          int        `json:"item_count"`
	CancellationReason string     `json:"cancellation_reason"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	ConfirmedAt        *time.Time `json:"confirmed_at"`
	CancelledAt        *time.Time `json:"cancelled_at"`
	ShippedAt          *time.Time `json:"shipped_at"`
}

// orderStats is the answer of /v1/stats/orders.
type orderStats struct {
	TotalOrders       int64   `json:"total_orders"`
	ConfirmedOrders   int64   `json:"confirmed_orders"`
	CancelledOrders   int64   `json:"cancelled_orders"`
	TotalRevenueCents int64   `json:"total_revenue_cents"`
	ConversionRate    float64 `json:"conversion_rate"`
}

// differ collects the differences of one stream.
type differ struct {
	what string
	out  []string
}

func (d *differ) eq(field string, got, want any) {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		d.out = append(d.out, fmt.Sprintf("%s: %s = %v, want %v", d.what, field, got, want))
	}
}

func (d *differ) set(field string, got *time.Time, want bool) {
	if (got != nil) != want {
		d.out = append(d.out, fmt.Sprintf("%s: %s = %v, want it set: %v", d.what, field, got, want))
	}
}

func (u *userModel) diff(g apiUser) []string {
	d := &differ{what: fmt.Sprintf("user %s", u.id)}
	d.eq("id", g.ID, u.id)
	d.eq("stream_id", g.StreamID, "user-"+u.id)
	d.eq("version", g.Version, u.version)
	d.eq("email", g.Email, u.email)
	d.eq("name", g.Name, u.name)
	d.eq("status", g.Status, u.status)
	d.eq("deactivation_reason", g.DeactivationReason, u.reason)
	d.set("deactivated_at", g.DeactivatedAt, u.status == "deactivated")
	if g.UpdatedAt.Before(g.CreatedAt) {
		d.out = append(d.out, fmt.Sprintf("%s: updated_at %v before created_at %v", d.what, g.UpdatedAt, g.CreatedAt))
	}
	return d.out
}

func (o *orderModel) diff(g apiOrder) []string {
	d := &differ{what: fmt.Sprintf("order %s", o.id)}
	d.eq("id", g.ID, o.id)
	d.eq("stream_id", g.StreamID, "order-"+o.id)
	d.eq("version", g.Version, o.version)
	d.eq("user_id", g.UserID, o.user.id)
	d.eq("status", g.Status, o.status)
	items := o.items
	if items == nil {
		items = []item{}
	}
	d.eq("items", g.Items, items)
	d.eq("total_cents", g.TotalCents, o.total)
	d.eq("item_count", g.ItemCount, len(o.items))
	d.eq("cancellation_reason", g.CancellationReason, o.reason)
	d.set("confirmed_at", g.ConfirmedAt, o.confirmed)
	d.set("cancelled_at", g.CancelledAt, o.cancelled)
	d.set("shipped_at", g.ShippedAt, o.shipped)
	if g.UpdatedAt.Before(g.CreatedAt) {
		d.out = append(d.out, fmt.Sprintf("%s: updated_at %v before created_at %v", d.what, g.UpdatedAt, g.CreatedAt))
	}
	return d.out
}

// stats are the order statistics the model implies: confirmed counts confirmed and shipped
// orders, revenue sums their totals, the conversion rate is their percentage of all orders,
// rounded half up to two decimals.
func (m *model) stats() orderStats {
	var s orderStats
	for _, o := range m.orders {
		if o.version < 0 {
			continue
		}
		s.TotalOrders++
		switch o.status {
		case "confirmed", "shipped":
			s.ConfirmedOrders++
			s.TotalRevenueCents += o.total
		case "cancelled":
			s.CancelledOrders++
		}
	}
	if s.TotalOrders > 0 {
		s.ConversionRate = float64((20_000*s.ConfirmedOrders+s.TotalOrders)/(2*s.TotalOrders)) / 100
	}
	return s
}

// reportDiffs fails the test with the first differences, if there are any.
func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("%s: %d differences from the commands sent; the first:\n  %s", what, len(diffs), strings.Join(diffs[:min(12, len(diffs))], "\n  "))
	}
}

// checkReadModels waits, within the given time, until the projector has applied every
// stream's last version, and compares its answers with the model: every user and order
// fetched one by one (with min_version and wait, the read-your-writes path), then the paged
// lists (which must hold exactly the model's streams), every user's orders and the order
// statistics.
func checkReadModels(t *testing.T, proj *service, m *model, within time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	users := map[string]*userModel{}
	for _, u := range m.users {
		if u.version >= 0 {
			users[u.id] = u
		}
	}
	orders := map[string]*orderModel{}
	for _, o := range m.orders {
		if o.version >= 0 {
			orders[o.id] = o
		}
	}

	// One by one, 8 at a time, waiting for each stream's version.
	type job struct {
		path    string
		version int64
		check   func([]byte) ([]string, error)
	}
	var jobs []job
	for _, u := range users {
		jobs = append(jobs, job{"/v1/users/" + u.id, u.version, func(b []byte) ([]string, error) {
			var g apiUser
			err := json.Unmarshal(b, &g)
			return u.diff(g), err
		}})
	}
	for _, o := range orders {
		jobs = append(jobs, job{"/v1/orders/" + o.id, o.version, func(b []byte) ([]string, error) {
			var g apiOrder
			err := json.Unmarshal(b, &g)
			return o.diff(g), err
		}})
	}
	var (
		mu     sync.Mutex
		diffs  []string
		behind []string
		errs   []error
	)
	ch := make(chan job)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range ch {
				for {
					left := time.Until(deadline)
					if left <= 0 {
						mu.Lock()
						behind = append(behind, fmt.Sprintf("%s (want version %d)", j.path, j.version))
						mu.Unlock()
						break
					}
					wait := min(left, 20*time.Second).Truncate(time.Millisecond)
					status, body, err := get(context.Background(), fmt.Sprintf("%s%s?min_version=%d&wait=%s", proj.url, j.path, j.version, wait))
					if err == nil && (status == http.StatusGatewayTimeout || status == http.StatusNotFound) {
						continue // not there yet
					}
					if err == nil && status != http.StatusOK {
						err = fmt.Errorf("GET %s: %d %s", j.path, status, body)
					}
					var d []string
					if err == nil {
						d, err = j.check(body)
					}
					mu.Lock()
					diffs = append(diffs, d...)
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
					break
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("reading the projector: %d errors; the first: %v", len(errs), errs[0])
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		t.Fatalf("%d of %d streams were not caught up within %v: %s", len(behind), len(jobs), within, strings.Join(behind[:min(10, len(behind))], ", "))
	}
	caughtUp := time.Since(start)
	reportDiffs(t, "GET /v1/users/{id} and /v1/orders/{id}", diffs)

	// The lists: exactly the model's streams, with the same answers.
	diffs = nil
	listed := map[string]bool{}
	for _, u := range listAll[apiUser](t, proj.url+"/v1/users", "", "users") {
		if want, ok := users[u.ID]; ok {
			diffs = append(diffs, want.diff(u)...)
		} else {
			diffs = append(diffs, fmt.Sprintf("user %s is listed but was never created", u.ID))
		}
		listed[u.ID] = true
	}
	byUser := map[string][]string{}
	for _, o := range listAll[apiOrder](t, proj.url+"/v1/orders", "", "orders") {
		if want, ok := orders[o.ID]; ok {
			diffs = append(diffs, want.diff(o)...)
		} else {
			diffs = append(diffs, fmt.Sprintf("order %s is listed but was never created", o.ID))
		}
		listed[o.ID] = true
		byUser[o.UserID] = append(byUser[o.UserID], o.ID)
	}
	for id := range users {
		if !listed[id] {
			diffs = append(diffs, fmt.Sprintf("user %s is missing from /v1/users", id))
		}
	}
	for id := range orders {
		if !listed[id] {
			diffs = append(diffs, fmt.Sprintf("order %s is missing from /v1/orders", id))
		}
	}
	reportDiffs(t, "GET /v1/users and /v1/orders", diffs)

	// The lists by status.
	diffs = nil
	for _, status := range []string{"active", "deactivated"} {
		var want, got []string
		for _, u := range users {
			if u.status == status {
				want = append(want, u.id)
			}
		}
		for _, u := range listAll[apiUser](t, proj.url+"/v1/users", "status="+status, "users") {
			got = append(got, u.ID)
		}
		diffs = append(diffs, diffIDs("/v1/users?status="+status, got, want)...)
	}
	for _, status := range []string{"pending", "confirmed", "cancelled", "shipped"} {
		var want, got []string
		for _, o := range orders {
			if o.status == status {
				want = append(want, o.id)
			}
		}
		for _, o := range listAll[apiOrder](t, proj.url+"/v1/orders", "status="+status, "orders") {
			got = append(got, o.ID)
		}
		diffs = append(diffs, diffIDs("/v1/orders?status="+status, got, want)...)
	}
	reportDiffs(t, "GET /v1/users?status= and /v1/orders?status=", diffs)

	// Each user's orders.
	diffs = nil
	var uw sync.WaitGroup
	uch := make(chan *userModel)
	for range 8 {
		uw.Go(func() {
			for u := range uch {
				var want []string
				for _, o := range u.orders {
					if o.version >= 0 {
						want = append(want, o.id)
					}
				}
				var got []string
				for _, o := range listAll[apiOrder](t, proj.url+"/v1/users/"+u.id+"/orders", "", "orders") {
					got = append(got, o.ID)
				}
				if d := diffIDs("user "+u.id+": /orders", got, want); d != nil {
					mu.Lock()
					diffs = append(diffs, d...)
					mu.Unlock()
				}
			}
		})
	}
	for _, u := range users {
		uch <- u
	}
	close(uch)
	uw.Wait()
	reportDiffs(t, "GET /v1/users/{id}/orders", diffs)

	var got orderStats
	status, body, err := get(context.Background(), proj.url+"/v1/stats/orders")
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET /v1/stats/orders: %d %s %v", status, body, err)
	}
	if want := m.stats(); got.TotalOrders != want.TotalOrders || got.ConfirmedOrders != want.ConfirmedOrders ||
		got.CancelledOrders != want.CancelledOrders || got.TotalRevenueCents != want.TotalRevenueCents ||
		math.Abs(got.ConversionRate-want.ConversionRate) > 1e-9 {
		t.Errorf("GET /v1/stats/orders = %+v, want %+v", got, want)
	}
	if !t.Failed() {
		t.Logf("read models: %d users and %d orders equal the commands (caught up %v after the check began, checked in %v)",
			len(users), len(orders), caughtUp.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
}

// diffIDs compares the ids a list answered with those it should have, in any order.
func diffIDs(what string, got, want []string) []string {
	slices.Sort(got)
	slices.Sort(want)
	var out []string
	for i, j := 0, 0; i < len(got) || j < len(want); {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			out = append(out, fmt.Sprintf("%s lists %s, which it should not", what, got[i]))
			i++
		case i == len(got) || want[j] < got[i]:
			out = append(out, fmt.Sprintf("%s does not list %s", what, want[j]))
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// listAll pages through a list of the projector's API, 173 rows a page (pages end anywhere);
// query, when not empty, filters it ("status=pending"). It may run on any goroutine: it
// reports failures with t.Errorf.
func listAll[T any](t *testing.T, url, query, member string) []T {
	var out []T
	cursor := ""
	for {
		u := url + "?limit=173"
		if query != "" {
			u += "&" + query
		}
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		status, body, err := get(context.Background(), u)
		if err != nil || status != http.StatusOK {
			t.Errorf("GET %s: %d %s %v", u, status, body, err)
			return out
		}
		var page map[string]json.RawMessage
		var rows []T
		if err := json.Unmarshal(body, &page); err != nil {
			t.Errorf("GET %s: %v", u, err)
			return out
		}
		if err := json.Unmarshal(page[member], &rows); err != nil {
			t.Errorf("GET %s: %s: %v", u, member, err)
			return out
		}
		out = append(out, rows...)
		cursor = ""
		if c, ok := page["next_cursor"]; ok {
			if err := json.Unmarshal(c, &cursor); err != nil {
				t.Errorf("GET %s: next_cursor: %v", u, err)
				return out
			}
		}
		if cursor == "" {
			return out
		}
	}
}

// ---------------------------------------------------------------- exactly once, dead letters

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// inboxRows is the number of events the projector's group has recorded as applied.
func inboxRows(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	return count(t, pool, `select count(*) from annals_inbox where group_name like $1`, projectorInbox)
}

// checkAppliedOnce checks that the event store holds the model's events and the inbox exactly
// one row for each of them but those in skipped (dead-lettered or parked): no event lost,
// none recorded twice.
func checkAppliedOnce(t *testing.T, pool *pgxpool.Pool, m *model, skipped ...uuid.UUID) {
	t.Helper()
	stored := count(t, pool, `select count(*) from annals_events`)
	if want := m.events() + int64(len(skipped)); stored != want {
		t.Errorf("the event store holds %d events, want %d (the model's and the ones appended directly)", stored, want)
	}
	rows := inboxRows(t, pool)
	rs, err := pool.Query(context.Background(), `select event_id from annals_events e
		where not exists (select 1 from annals_inbox i where i.group_name like $1 and i.event_id = e.event_id)
		order by global_position`, projectorInbox)
	if err != nil {
		t.Fatal(err)
	}
	var missing []uuid.UUID
	for rs.Next() {
		var id uuid.UUID
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		missing = append(missing, id)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, skipped) {
		t.Errorf("events without an inbox row: %d (first: %v), want %d (%v)", len(missing), missing[:min(5, len(missing))], len(skipped), skipped)
	}
	if rows != stored-int64(len(skipped)) {
		t.Errorf("the inbox holds %d rows for %d events of which %d are not applied", rows, stored, len(skipped))
	}
}

// dlqTopic is the projector's dead-letter topic.
func (e *faultEnv) dlqTopic() string { return e.cfg.DLQTopic(e.cfg.ConsumerGroup("projector")) }

// topicEnds returns each partition's end offset (where the next record goes).
func topicEnds(t *testing.T, e *faultEnv, topic string) map[int]int64 {
	t.Helper()
	var reqs []kafka.OffsetRequest
	for p := range e.cfg.Kafka.TopicPartitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	// A topic created moments ago may not have its leaders known everywhere yet: such an
	// answer is retried for a while.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err == nil {
			out := map[int]int64{}
			for _, p := range resp.Topics[topic] {
				if p.Error != nil {
					err = fmt.Errorf("partition %d: %w", p.Partition, p.Error)
					break
				}
				out[p.Partition] = p.LastOffset
			}
			if err == nil {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("list offsets of %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sumOffsets(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// dlqRecords is the number of records in the dead-letter topic.
func dlqRecords(t *testing.T, e *faultEnv) int64 {
	t.Helper()
	return sumOffsets(topicEnds(t, e, e.dlqTopic()))
}

// readTopic reads every record of the topic, partition by partition.
func readTopic(t *testing.T, e *faultEnv, topic string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p, end := range topicEnds(t, e, topic) {
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// committedMessages sums the projector group's committed offsets over the event topics: the
// messages below them are done and will not be delivered to the group again.
func committedMessages(t *testing.T, e *faultEnv) int64 {
	t.Helper()
	topics := map[string][]int{}
	for _, tp := range e.eventTopics() {
		for p := range e.cfg.Kafka.TopicPartitions {
			topics[tp] = append(topics[tp], p)
		}
	}
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: e.cfg.ConsumerGroup("projector"), Topics: topics})
	if err != nil {
		t.Fatalf("fetch the committed offsets: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("fetch the committed offsets: %v", resp.Error)
	}
	var n int64
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("fetch the committed offsets: %d: %v", p.Partition, p.Error)
			}
			n += max(p.CommittedOffset, 0)
		}
	}
	return n
}

// checkNoDeadLetters checks that the projector dead-lettered nothing and blocked no stream.
func checkNoDeadLetters(t *testing.T, e *faultEnv) {
	t.Helper()
	if n := dlqRecords(t, e); n != 0 {
		var sample []string
		for _, m := range readTopic(t, e, e.dlqTopic())[:min(3, int(n))] {
			sample = append(sample, fmt.Sprintf("%s: %s", m.Key, header(m, "error")))
		}
		t.Errorf("%d records in the dead-letter topic %s: %s", n, e.dlqTopic(), strings.Join(sample, "; "))
	}
	if n := count(t, e.pool, `select count(*) from annals_consumer_blocks`); n != 0 {
		t.Errorf("%d streams are blocked", n)
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ---------------------------------------------------------------- tests

// TestProjector_ModelEqualsCommands: 20,000 events over 1,000 streams through the writer and
// one projector; the read models equal the commands, every event is applied exactly once and
// nothing is dead-lettered.
func TestProjector_ModelEqualsCommands(t *testing.T) {
	d := newDeployment(t)
	proj := d.startProjector(t, "projector", freeAddr(t))
	r := fullWorkload.start(t, d.writer.url)
	r.wait(t, 3*time.Minute)
	sentIn := r.took
	checkReadModels(t, proj, r.m, time.Minute)
	checkAppliedOnce(t, d.env.pool, r.m)
	checkNoDeadLetters(t, d.env)
	if proj.exited() {
		t.Errorf("the projector exited: %v", proj.err)
	}
	t.Logf("%d events sent in %v (%.0f commands/s; %d refused as they should be)", r.sent.Load(), sentIn.Round(time.Millisecond),
		float64(r.sent.Load())/sentIn.Seconds(), r.refused.Load())
}

// TestProjector_SIGKILL: the projector is killed with SIGKILL at three random points while the
// 20,000 events are sent (each time after it has applied some events since it started), and
// started again. Afterwards the read models equal the commands: nothing lost, nothing applied
// twice (one inbox row per event, and no order with an item too many).
func TestProjector_SIGKILL(t *testing.T) {
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), projectorKillRound)
	}
}

func projectorKillRound(t *testing.T) {
	d := newDeployment(t)
	addr := freeAddr(t)
	proj := d.startProjector(t, "projector-1", addr)
	w := fullWorkload
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	// Three points between a tenth and nine tenths of the events, a tenth apart at least.
	var points []int64
	for {
		points = points[:0]
		for range 3 {
			points = append(points, int64(w.events/10+rng.IntN(w.events*8/10)))
		}
		slices.Sort(points)
		if points[1]-points[0] >= int64(w.events/10) && points[2]-points[1] >= int64(w.events/10) {
			break
		}
	}
	r := w.start(t, d.writer.url)
	var redelivered int64
	var report []string
	for i, point := range points {
		// The projector is busy: it has applied some events since it started.
		since, busy := inboxRows(t, d.env.pool), int64(1+rng.IntN(500))
		waitEvery(t, 2*time.Minute, 50*time.Millisecond, fmt.Sprintf("%d events sent and the projector busy, for kill %d", point, i+1), func() bool {
			if err := r.failure(); err != nil {
				t.Fatalf("workload: %v", err)
			}
			if proj.exited() {
				t.Fatalf("%s exited on its own: %v", proj.name, proj.err)
			}
			if r.sent.Load() < point {
				return false
			}
			n := inboxRows(t, d.env.pool)
			return n >= since+busy || (r.finished() && n >= r.sent.Load())
		})
		sent := r.sent.Load()
		proj.kill()
		applied, committed := inboxRows(t, d.env.pool), committedMessages(t, d.env)
		redelivered += applied - committed
		report = append(report, fmt.Sprintf("kill %d after %d events sent: %d applied, %d committed", i+1, sent, applied, committed))
		proj = d.startProjector(t, fmt.Sprintf("projector-%d", i+2), addr)
	}
	r.wait(t, 3*time.Minute)
	checkReadModels(t, proj, r.m, 2*time.Minute)
	checkAppliedOnce(t, d.env.pool, r.m)
	checkNoDeadLetters(t, d.env)
	var records int64
	for _, tp := range d.env.eventTopics() {
		records += sumOffsets(topicEnds(t, d.env, tp))
	}
	t.Logf("%s; %d events applied before a kill without their offsets committed were delivered again (and skipped by the inbox); the event topics hold %d records for %d events; the last projector finished %.0f of them",
		strings.Join(report, "; "), redelivered, records, r.sent.Load(), processedTotal(t, proj))
}

// TestProjector_TwoInstancesRebalance: a second projector joins the group while events are
// sent (a rebalance: both end up with partitions), then the first stops with SIGTERM (another:
// the second takes every partition). The read models equal the commands.
func TestProjector_TwoInstancesRebalance(t *testing.T) {
	d := newDeployment(t)
	a := d.startProjector(t, "projector-a", freeAddr(t))
	w := workload{users: 120, ordersPerUser: 3, events: 8_000, clients: 8}
	partitions := 2 * d.env.cfg.Kafka.TopicPartitions
	r := w.start(t, d.writer.url)
	waitFor(t, time.Minute, "a third of the events to be sent", func() bool {
		if err := r.failure(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		return r.sent.Load() >= int64(w.events/3)
	})
	waitEvery(t, time.Minute, 100*time.Millisecond, "projector-a to process events", func() bool { return processedTotal(t, a) > 0 })
	joinedAt := r.sent.Load()
	b := d.startProjector(t, "projector-b", freeAddr(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("generations (partitions owned): a %v, b %v", generations(t, a.process), generations(t, b.process))
		}
	})
	waitEvery(t, time.Minute, 100*time.Millisecond, "both projectors to own partitions", func() bool {
		if a.exited() || b.exited() {
			t.Fatalf("a projector exited on its own: a %v, b %v", a.err, b.err)
		}
		ga, gb := generations(t, a.process), generations(t, b.process)
		return len(ga) > 0 && len(gb) > 0 && ga[len(ga)-1] > 0 && gb[len(gb)-1] > 0 && ga[len(ga)-1]+gb[len(gb)-1] == partitions
	})
	sharedAt := r.sent.Load()
	waitFor(t, time.Minute, "two thirds of the events to be sent", func() bool { return r.finished() || r.sent.Load() >= int64(2*w.events/3) })
	stoppedAt, aProcessed := r.sent.Load(), processedTotal(t, a)
	if !a.stop(30 * time.Second) {
		t.Fatalf("projector-a did not stop within 30s of SIGTERM")
	}
	if a.err != nil {
		t.Errorf("projector-a exited with %v after SIGTERM", a.err)
	}
	if !strings.Contains(a.logText(t), "consume: left the group") {
		t.Errorf("projector-a did not log that it left the group")
	}
	waitEvery(t, time.Minute, 100*time.Millisecond, "projector-b to own every partition", func() bool {
		gb := generations(t, b.process)
		return len(gb) > 0 && gb[len(gb)-1] == partitions
	})
	r.wait(t, 3*time.Minute)
	checkReadModels(t, b, r.m, 2*time.Minute)
	checkAppliedOnce(t, d.env.pool, r.m)
	checkNoDeadLetters(t, d.env)
	t.Logf("projector-b started after %d events were sent and owned partitions after %d; projector-a stopped (SIGTERM) after %d, having finished %.0f messages; projector-b finished %.0f; generations (partitions owned): a %v, b %v",
		joinedAt, sharedAt, stoppedAt, aProcessed, processedTotal(t, b), generations(t, a.process), generations(t, b.process))
}

// rebuild runs `annals projector rebuild` with the arguments and returns its output.
func (d *deployment) rebuild(t *testing.T, name string, args ...string) (out string, took time.Duration) {
	t.Helper()
	start := time.Now()
	p := startProcess(t, d.bins.annals, append([]string{"projector", "rebuild"}, args...), d.env.vars, name)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not finish within 2 minutes:\n%s", name, p.logText(t))
	}
	out = p.logText(t)
	if p.err != nil {
		t.Fatalf("annals projector rebuild: %v\n%s", p.err, out)
	}
	return out, time.Since(start)
}

// logWarnings logs the warnings and errors in the process's JSON log (the first 10).
func logWarnings(t *testing.T, p *process) {
	t.Helper()
	var lines []string
	for line := range strings.Lines(p.logText(t)) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || (rec["level"] != "WARN" && rec["level"] != "ERROR") {
			continue
		}
		out := fmt.Sprintf("%v %v %v", rec["time"], rec["level"], rec["msg"])
		for _, k := range []string{"error", "reason", "message"} {
			if v, ok := rec[k]; ok {
				out += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		lines = append(lines, out)
	}
	if len(lines) > 0 {
		t.Logf("--- %s: %d warnings and errors; the first:\n  %s", p.name, len(lines), strings.Join(lines[:min(10, len(lines))], "\n  "))
	}
}

// generations returns, from the projector's log, how many partitions its consumer owned in
// each group generation it took part in, in order.
func generations(t *testing.T, p *process) []int {
	t.Helper()
	var out []int
	for line := range strings.Lines(p.logText(t)) {
		var rec struct {
			Msg        string           `json:"msg"`
			Partitions map[string][]int `json:"partitions"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "consume: generation started" {
			continue
		}
		n := 0
		for _, ps := range rec.Partitions {
			n += len(ps)
		}
		out = append(out, n)
	}
	return out
}

// TestProjector_PoisonParksStream: an event the projector refuses (an ItemRemoved of an item
// the order does not have), appended straight to the event store, goes to the dead-letter
// topic with its reason; the three valid events after it on its stream are parked there too
// (the last after the projector restarted), the stream's read model stays at the version
// before the poison, and every other stream, with traffic before, during and after, is
// complete. A rebuild afterwards agrees.
func TestProjector_PoisonParksStream(t *testing.T) {
	d := newDeployment(t)
	proj := d.startProjector(t, "projector", freeAddr(t))
	ctx := context.Background()

	// The victim: a user and an order with one change, through the writer.
	w := workload{users: 80, ordersPerUser: 3, events: 4_000, clients: 8}
	r := w.start(t, d.writer.url)
	c := &writerClient{url: d.writer.url, rng: rand.New(rand.NewPCG(1, 2)), run: r}
	vu := &userModel{id: uuid.NewString(), version: -1}
	vo := &orderModel{id: uuid.NewString(), user: vu, version: -1, mods: 1}
	vu.orders = []*orderModel{vo}
	for _, step := range []func() error{
		func() error { return c.userStep(ctx, vu) },
		func() error { return c.orderStep(ctx, vo) },
		func() error { return c.orderStep(ctx, vo) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	stream := "order-" + vo.id
	waitFor(t, time.Minute, "a third of the events to be sent", func() bool {
		if err := r.failure(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		return r.sent.Load() >= int64(w.events/3)
	})

	// The poison and three valid events after it, appended directly.
	store := postgres.New(d.env.pool, postgres.Options{})
	newEvent := func(typ, data string) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, Data: json.RawMessage(data)}
	}
	poison := newEvent("ItemRemoved", `{"item_id":"sku-ghost"}`)
	later := []events.Event{
		newEvent("ItemAdded", `{"item":{"id":"sku-late-1","name":"Late mug","price_cents":1200,"quantity":1}}`),
		newEvent("ItemAdded", `{"item":{"id":"sku-late-2","name":"Late bowl","price_cents":900,"quantity":2}}`),
		newEvent("ItemRemoved", `{"item_id":"sku-late-1"}`),
	}
	before := vo.version
	appendTo := func(version int64, e events.Event) {
		t.Helper()
		if _, err := store.Append(ctx, stream, events.Exact(version), []events.Event{e}, events.AppendOptions{CorrelationID: "poison-test", CausationID: "poison-test"}); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(before, poison)
	appendTo(before+1, later[0])
	appendTo(before+2, later[1])
	appendedAt := r.sent.Load()
	dlq := func(n int64, what string) {
		t.Helper()
		waitEvery(t, time.Minute, 50*time.Millisecond, what, func() bool {
			if proj.exited() {
				t.Fatalf("the projector exited: %v", proj.err)
			}
			return dlqRecords(t, d.env) >= n
		})
	}
	dlq(3, "the poison and the two events after it in the dead-letter topic")
	// The block outlives the process: after a restart, the stream's next event is parked too.
	stopping := time.Now()
	if !proj.stop(30 * time.Second) {
		t.Fatalf("the projector did not stop within 30s of SIGTERM")
	}
	stopped := time.Since(stopping)
	proj = d.startProjector(t, "projector-2", strings.TrimPrefix(proj.url, "http://"))
	appendTo(before+3, later[2])
	dlq(4, "the third event after the poison in the dead-letter topic, after a restart")
	restarted := time.Since(stopping)
	r.wait(t, 3*time.Minute)
	r.m.users = append(r.m.users, vu)
	r.m.orders = append(r.m.orders, vo) // as it was before the poison
	checkReadModels(t, proj, r.m, 2*time.Minute)
	checkAppliedOnce(t, d.env.pool, r.m, poison.ID, later[0].ID, later[1].ID, later[2].ID)

	// The dead letters: the poison first, then the parked events, in order.
	recs := readTopic(t, d.env, d.env.dlqTopic())
	if len(recs) != 4 {
		var got []string
		for _, m := range recs {
			got = append(got, fmt.Sprintf("%s event %s: %s", m.Key, header(m, "event-id"), header(m, "error")))
		}
		t.Fatalf("%d records in the dead-letter topic, want 4:\n%s", len(recs), strings.Join(got, "\n"))
	}
	slices.SortFunc(recs, func(a, b kafka.Message) int {
		x, _ := strconv.ParseInt(header(a, "original-offset"), 10, 64)
		y, _ := strconv.ParseInt(header(b, "original-offset"), 10, 64)
		return int(x - y)
	})
	orderTopic := d.env.cfg.TopicName("order")
	for i, m := range recs {
		want := append([]events.Event{poison}, later...)[i]
		what := fmt.Sprintf("dead letter %d", i+1)
		if string(m.Key) != stream || header(m, "event-id") != want.ID.String() {
			t.Errorf("%s: key %s, event %s; want %s, event %s (%s)", what, m.Key, header(m, "event-id"), stream, want.ID, want.Type)
		}
		if header(m, "original-topic") != orderTopic {
			t.Errorf("%s: original-topic %q, want %q", what, header(m, "original-topic"), orderTopic)
		}
		if _, err := strconv.Atoi(header(m, "original-partition")); err != nil {
			t.Errorf("%s: original-partition %q", what, header(m, "original-partition"))
		}
		if !bytes.HasPrefix(m.Value, []byte{0xC3, 0x01}) {
			t.Errorf("%s: the value is not the original Avro record: % x", what, m.Value[:min(8, len(m.Value))])
		}
		reason := header(m, "error")
		if i == 0 {
			// Permanent: dead-lettered at once, after one attempt.
			if !strings.Contains(reason, `the order has no item "sku-ghost"`) || !strings.Contains(reason, "ItemRemoved") || strings.HasPrefix(reason, "parked:") {
				t.Errorf("%s (the poison): error %q does not name the reason", what, reason)
			}
			if a := header(m, "attempts"); a != "1" {
				t.Errorf("%s (the poison): attempts %q, want 1", what, a)
			}
		} else if !strings.HasPrefix(reason, "parked:") || !strings.Contains(reason, poison.ID.String()) || header(m, "attempts") != "0" {
			t.Errorf("%s: error %q, attempts %q; want parked behind event %s, 0 attempts", what, reason, header(m, "attempts"), poison.ID)
		}
	}
	var blockedBy uuid.UUID
	if err := d.env.pool.QueryRow(ctx, `select event_id from annals_consumer_blocks where group_name = $1 and stream_id = $2`, d.env.cfg.ConsumerGroup("projector"), stream).Scan(&blockedBy); err != nil || blockedBy != poison.ID {
		t.Errorf("block of %s: event %v, %v; want %s", stream, blockedBy, err, poison.ID)
	}
	if n := count(t, d.env.pool, `select count(*) from annals_consumer_blocks`); n != 1 {
		t.Errorf("%d streams are blocked, want 1", n)
	}

	// A rebuild from the event store stops the stream at the same place.
	out, _ := d.rebuild(t, "rebuild")
	if !strings.Contains(out, "stopped: "+stream+": ") || !strings.Contains(out, "1 streams stopped") || !strings.Contains(out, "sku-ghost") {
		t.Errorf("the rebuild did not stop %s, and only it, at the poison:\n%s", stream, out)
	}
	checkReadModels(t, proj, r.m, 30*time.Second)
	t.Logf("poison appended at version %d of %s after %d workload events; the stream's read model stays at version %d, also after a rebuild; %d other streams complete; the projector stopped in %v after SIGTERM, and the event appended after its restart was parked %v after the SIGTERM",
		before+1, stream, appendedAt, before, len(r.m.users)+len(r.m.orders)-1, stopped.Round(time.Millisecond), restarted.Round(time.Millisecond))
}

// TestProjector_RebuildEqualsLive: `annals projector rebuild` runs while the projector runs
// and commands still arrive; afterwards the API answers the model again, from the new
// generation, and a second rebuild on the finished workload changes nothing either.
func TestProjector_RebuildEqualsLive(t *testing.T) {
	d := newDeployment(t)
	proj := d.startProjector(t, "projector", freeAddr(t))
	w := workload{users: 120, ordersPerUser: 3, events: 6_000, clients: 8}
	r := w.start(t, d.writer.url)
	waitFor(t, time.Minute, "a third of the events to be sent", func() bool {
		if err := r.failure(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		return r.sent.Load() >= int64(w.events/3)
	})
	startedAt := r.sent.Load()
	watch := watchVersions(proj.url)
	// Small pages: the fill takes longer, and more events commit while it runs.
	out, took := d.rebuild(t, "rebuild-1", "-batch-size", "50")
	endedAt, during := r.sent.Load(), !r.finished()
	polls, problems := watch.stop()
	if !strings.Contains(out, "generation 2 is live") || strings.Contains(out, "stopped:") {
		t.Errorf("the rebuild did not switch to generation 2, or stopped streams:\n%s", out)
	}
	if len(problems) > 0 {
		t.Errorf("reads during the rebuild (%d polls): %d problems; the first:\n  %s", polls, len(problems), strings.Join(problems[:min(10, len(problems))], "\n  "))
	}
	r.wait(t, 3*time.Minute)
	checkReadModels(t, proj, r.m, 2*time.Minute)
	checkAppliedOnce(t, d.env.pool, r.m)
	checkNoDeadLetters(t, d.env)

	out2, took2 := d.rebuild(t, "rebuild-2")
	if !strings.Contains(out2, "generation 3 is live") || strings.Contains(out2, "stopped:") {
		t.Errorf("the second rebuild did not switch to generation 3, or stopped streams:\n%s", out2)
	}
	checkReadModels(t, proj, r.m, 30*time.Second)
	if n := count(t, d.env.pool, `select count(*) from pg_tables where schemaname = current_schema() and tablename ~ '^annals_proj_(users|orders)_g[0-9]+$'`); n != 2 {
		t.Errorf("%d read-model tables after two rebuilds, want 2 (the old generations dropped)", n)
	}
	if proj.exited() {
		t.Errorf("the projector exited: %v", proj.err)
	}
	var caughtUp []string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "catch-up:") || strings.HasPrefix(line, "switch:") {
			caughtUp = append(caughtUp, strings.TrimSpace(line))
		}
	}
	t.Logf("rebuild during the workload: %v, from %d to %d events sent (commands still arriving at its end: %v), every stream read %d times meanwhile, no version going back (%s); rebuild after it: %v",
		took.Round(time.Millisecond), startedAt, endedAt, during, polls, strings.Join(caughtUp, "; "), took2.Round(time.Millisecond))
}

// versionWatch reads every user and order (the first page of each list, 500 rows) over and
// over, and notes failed reads and any stream whose version goes down between two reads.
type versionWatch struct {
	cancel   context.CancelFunc
	done     chan struct{}
	polls    int
	problems []string
}

func watchVersions(url string) *versionWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &versionWatch{cancel: cancel, done: make(chan struct{})}
	seen := map[string]int64{}
	read := func(path, member string) {
		status, body, err := get(ctx, url+path+"?limit=500")
		if ctx.Err() != nil {
			return
		}
		var page map[string][]struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		}
		if err == nil && status == http.StatusOK {
			err = json.Unmarshal(body, &page)
		} else if err == nil {
			err = fmt.Errorf("%d %s", status, body)
		}
		if err != nil {
			w.problems = append(w.problems, fmt.Sprintf("GET %s: %v", path, err))
			return
		}
		for _, row := range page[member] {
			if v, ok := seen[row.ID]; ok && row.Version < v {
				w.problems = append(w.problems, fmt.Sprintf("%s %s: version %d after %d", member, row.ID, row.Version, v))
			}
			seen[row.ID] = max(seen[row.ID], row.Version)
		}
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond) // a pace for the reads, not a wait for anything
		defer tick.Stop()
		for ctx.Err() == nil {
			read("/v1/users", "users")
			read("/v1/orders", "orders")
			w.polls++
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop ends the reads and returns how many rounds there were and the problems seen.
func (w *versionWatch) stop() (int, []string) {
	w.cancel()
	<-w.done
	return w.polls, w.problems
}

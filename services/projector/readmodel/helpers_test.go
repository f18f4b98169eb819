package readmodel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// env is an event store and the read models on a schema of their own of the real PostgreSQL.
type env struct {
	pool   *pgxpool.Pool
	store  *postgres.Store
	proj   *readmodel.Projection
	users  *events.Repository[domain.UserState]
	orders *events.Repository[domain.OrderState]
}

func newEnv(tb testing.TB, opts ...readmodel.Options) *env {
	tb.Helper()
	pool, _ := testenv.SchemaPool(tb)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatalf("migrate the event store: %v", err)
	}
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		tb.Fatalf("migrate the read models: %v", err)
	}
	var o readmodel.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	store := postgres.New(pool, postgres.Options{})
	return &env{
		pool:   pool,
		store:  store,
		proj:   readmodel.New(pool, o),
		users:  &events.Repository[domain.UserState]{Store: store, Def: domain.User},
		orders: &events.Repository[domain.OrderState]{Store: store, Def: domain.Order},
	}
}

// at is the recording time of the events that ev builds: whole microseconds, as PostgreSQL
// keeps them.
var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ev builds an envelope without the store, for Apply alone. data is marshalled unless it is a
// string, which is taken as raw JSON.
func ev(streamID string, version int64, typ string, data any) events.Envelope {
	var raw []byte
	if s, ok := data.(string); ok {
		raw = []byte(s)
	} else {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			panic(err)
		}
	}
	return events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: streamID, Category: events.Category(streamID),
		Version: version, Type: typ, SchemaVersion: 1, Data: raw,
		RecordedAt: at.Add(time.Duration(version) * time.Second),
	}
}

// apply applies e in a transaction of its own that commits when Apply succeeds and rolls back
// when it fails.
func (e *env) apply(tb testing.TB, ev events.Envelope) error {
	tb.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := e.proj.Apply(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	return nil
}

// mustApply applies every event and fails the test on an error.
func (e *env) mustApply(tb testing.TB, evs ...events.Envelope) {
	tb.Helper()
	for _, ev := range evs {
		if err := e.apply(tb, ev); err != nil {
			tb.Fatalf("apply %s %s@%d: %v", ev.Type, ev.StreamID, ev.Version, err)
		}
	}
}

// appendRaw appends one event of any shape with expected version any and returns it as stored.
func (e *env) appendRaw(tb testing.TB, streamID, typ string, data any) events.Envelope {
	tb.Helper()
	event, err := events.NewEvent(typ, data)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := e.store.Append(context.Background(), streamID, events.Any(), []events.Event{event}, events.AppendOptions{})
	if err != nil {
		tb.Fatalf("append %s to %s: %v", typ, streamID, err)
	}
	return e.read(tb, streamID, res.FirstVersion, res.LastVersion)[0]
}

// read reads versions from to to of a stream.
func (e *env) read(tb testing.TB, streamID string, from, to int64) []events.Envelope {
	tb.Helper()
	evs, err := e.store.ReadStream(context.Background(), streamID, from, to, int(to-from+1))
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

// allEvents reads the whole store, sorted by stream and version (the order within a stream is
// the only one Apply needs).
func (e *env) allEvents(tb testing.TB) []events.Envelope {
	tb.Helper()
	var out []events.Envelope
	after := int64(0)
	for {
		page, err := e.store.ReadAll(context.Background(), events.AllQuery{After: after, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		out = append(out, page...)
		after = page[len(page)-1].GlobalPosition
	}
	slices.SortFunc(out, func(a, b events.Envelope) int {
		if c := strings.Compare(a.StreamID, b.StreamID); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
	return out
}

// state is every row of the live read models, read through the paged queries.
type state struct {
	Users  []readmodel.User
	Orders []readmodel.Order
}

func dump(tb testing.TB, p *readmodel.Projection) state {
	tb.Helper()
	ctx := context.Background()
	var s state
	for after := uuid.Nil; ; {
		page, more, err := p.Users(ctx, readmodel.UserQuery{After: after, Limit: readmodel.MaxLimit})
		if err != nil {
			tb.Fatal(err)
		}
		s.Users = append(s.Users, page...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	for after := uuid.Nil; ; {
		page, more, err := p.Orders(ctx, readmodel.OrderQuery{After: after, Limit: readmodel.MaxLimit})
		if err != nil {
			tb.Fatal(err)
		}
		s.Orders = append(s.Orders, page...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	return s
}

// sameState compares two states row by row and reports the first differences.
func sameState(tb testing.TB, got, want state) {
	tb.Helper()
	if len(got.Users) != len(want.Users) || len(got.Orders) != len(want.Orders) {
		tb.Errorf("got %d users and %d orders, want %d and %d", len(got.Users), len(got.Orders), len(want.Users), len(want.Orders))
	}
	diffs := 0
	for i := range min(len(got.Users), len(want.Users)) {
		if g, w := jsonOf(got.Users[i]), jsonOf(want.Users[i]); g != w && diffs < 5 {
			diffs++
			tb.Errorf("user %d:\n got %s\nwant %s", i, g, w)
		}
	}
	for i := range min(len(got.Orders), len(want.Orders)) {
		if g, w := jsonOf(got.Orders[i]), jsonOf(want.Orders[i]); g != w && diffs < 10 {
			diffs++
			tb.Errorf("order %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// workload runs random commands of the writer's domain against the store, the way the
// writer's API does, on streams of its own.
type workload struct {
	env    *env
	rng    *rand.Rand
	users  []string
	orders []string
	items  int
}

func newWorkload(e *env, seed uint64) *workload {
	return &workload{env: e, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// step runs one random command and returns the events it appended (none when the domain
// refused it).
func (w *workload) step(tb testing.TB) []events.Envelope {
	tb.Helper()
	ctx := context.Background()
	if len(w.users) == 0 || w.rng.IntN(100) < 12 {
		a := w.env.users.New(uuid.Must(uuid.NewV7()).String())
		err := domain.CreateUser(a, fmt.Sprintf("u%d@example.com", w.rng.IntN(1e6)), fmt.Sprintf("User %d", w.rng.IntN(1e6)))
		return w.save(tb, a.StreamID(), err, func() (events.AppendResult, error) { return w.env.users.Save(ctx, a, events.AppendOptions{}) },
			func() { w.users = append(w.users, a.ID()) })
	}
	switch r := w.rng.IntN(100); {
	case r < 8:
		return w.onUser(tb, func(a *events.Aggregate[domain.UserState]) error {
			name := fmt.Sprintf("Renamed %d", w.rng.IntN(1e6))
			u := domain.ProfileUpdate{Name: &name}
			if w.rng.IntN(2) == 0 {
				email := fmt.Sprintf("new%d@example.com", w.rng.IntN(1e6))
				u.Email = &email
			}
			return domain.UpdateUserProfile(a, u)
		})
	case r < 12:
		return w.onUser(tb, func(a *events.Aggregate[domain.UserState]) error {
			return domain.DeactivateUser(a, "left")
		})
	case r < 35 || len(w.orders) == 0:
		user, _, err := w.env.users.Load(ctx, w.users[w.rng.IntN(len(w.users))])
		if err != nil {
			tb.Fatal(err)
		}
		a := w.env.orders.New(uuid.Must(uuid.NewV7()).String())
		items := make([]domain.Item, w.rng.IntN(3))
		for i := range items {
			items[i] = w.item()
		}
		err = domain.CreateOrder(a, user, items)
		return w.save(tb, a.StreamID(), err, func() (events.AppendResult, error) { return w.env.orders.Save(ctx, a, events.AppendOptions{}) },
			func() { w.orders = append(w.orders, a.ID()) })
	case r < 60:
		return w.onOrder(tb, func(a *events.Aggregate[domain.OrderState]) error { return domain.AddItem(a, w.item()) })
	case r < 70:
		return w.onOrder(tb, func(a *events.Aggregate[domain.OrderState]) error {
			items := a.State().Items
			if len(items) == 0 {
				return &domain.RuleError{Rule: domain.RuleItemNotInOrder}
			}
			return domain.RemoveItem(a, items[w.rng.IntN(len(items))].ID)
		})
	case r < 85:
		return w.onOrder(tb, domain.ConfirmOrder)
	case r < 92:
		return w.onOrder(tb, func(a *events.Aggregate[domain.OrderState]) error { return domain.CancelOrder(a, "changed my mind") })
	default:
		return w.onOrder(tb, domain.ShipOrder)
	}
}

func (w *workload) item() domain.Item {
	w.items++
	return domain.Item{ID: fmt.Sprintf("sku-%d", w.items), Name: "Thing", PriceCents: int64(w.rng.IntN(10000)), Quantity: int64(1 + w.rng.IntN(5))}
}

func (w *workload) onUser(tb testing.TB, cmd func(*events.Aggregate[domain.UserState]) error) []events.Envelope {
	tb.Helper()
	ctx := context.Background()
	a, _, err := w.env.users.Load(ctx, w.users[w.rng.IntN(len(w.users))])
	if err != nil {
		tb.Fatal(err)
	}
	return w.save(tb, a.StreamID(), cmd(a), func() (events.AppendResult, error) { return w.env.users.Save(ctx, a, events.AppendOptions{}) }, nil)
}

func (w *workload) onOrder(tb testing.TB, cmd func(*events.Aggregate[domain.OrderState]) error) []events.Envelope {
	tb.Helper()
	ctx := context.Background()
	a, _, err := w.env.orders.Load(ctx, w.orders[w.rng.IntN(len(w.orders))])
	if err != nil {
		tb.Fatal(err)
	}
	return w.save(tb, a.StreamID(), cmd(a), func() (events.AppendResult, error) { return w.env.orders.Save(ctx, a, events.AppendOptions{}) }, nil)
}

func (w *workload) save(tb testing.TB, streamID string, cmdErr error, save func() (events.AppendResult, error), saved func()) []events.Envelope {
	tb.Helper()
	var rule *domain.RuleError
	if errors.As(cmdErr, &rule) {
		return nil
	}
	if cmdErr != nil {
		tb.Fatalf("command on %s: %v", streamID, cmdErr)
	}
	res, err := save()
	if err != nil {
		tb.Fatalf("save %s: %v", streamID, err)
	}
	if saved != nil {
		saved()
	}
	return w.env.read(tb, streamID, res.FirstVersion, res.LastVersion)
}

// run runs n commands and returns their events.
func (w *workload) run(tb testing.TB, n int) []events.Envelope {
	tb.Helper()
	var out []events.Envelope
	for range n {
		out = append(out, w.step(tb)...)
	}
	return out
}

// version is the version of a stream's row in the live read models; -1 without one.
func version(tb testing.TB, p *readmodel.Projection, streamID string) int64 {
	tb.Helper()
	ctx := context.Background()
	category, id, _ := strings.Cut(streamID, "-")
	var v int64
	var err error
	if category == domain.UserCategory {
		var u readmodel.User
		u, err = p.User(ctx, uuid.MustParse(id))
		v = u.Version
	} else {
		var o readmodel.Order
		o, err = p.Order(ctx, uuid.MustParse(id))
		v = o.Version
	}
	if errors.Is(err, events.ErrNotFound) {
		return -1
	}
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// tableExists reports whether the schema of the pool has the table.
func tableExists(tb testing.TB, pool *pgxpool.Pool, name string) bool {
	tb.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `select to_regclass($1) is not null`, name).Scan(&ok); err != nil {
		tb.Fatal(err)
	}
	return ok
}

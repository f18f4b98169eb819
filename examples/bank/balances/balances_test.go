package balances_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/examples/bank/balances"
	"github.com/annals-dev/annals/examples/bank/banktest"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

const group = "bank-balances-test"

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// setup migrates a fresh schema: the event store's tables (the inbox) and the read model's.
func setup(tb testing.TB) (*pgxpool.Pool, *balances.Projection) {
	tb.Helper()
	pool := banktest.SchemaPool(tb)
	ctx := context.Background()
	_, err := postgres.Migrate(ctx, pool, nil)
	must(tb, err)
	must(tb, balances.Migrate(ctx, pool, nil))
	return pool, balances.New(pool, group)
}

// messages records the commands' events on a new account and returns them as the consumer
// would receive them.
func messages(tb testing.TB, id string, cmds ...func(*events.Aggregate[bank.AccountState]) error) []*consume.Message {
	tb.Helper()
	a := (&events.Repository[bank.AccountState]{Def: bank.Account}).New(id)
	for _, cmd := range cmds {
		must(tb, cmd(a))
	}
	ms := make([]*consume.Message, len(a.Pending()))
	for i, e := range a.Pending() {
		ms[i] = &consume.Message{Event: events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: a.StreamID(), Category: bank.Category, Version: int64(i),
			GlobalPosition: int64(i + 1), Type: e.Type, SchemaVersion: 1, Data: e.Data,
			RecordedAt: time.Date(2026, 5, 1, 12, 0, i, 0, time.UTC),
		}, Attempt: 1}
	}
	return ms
}

func open(owner string, overdraft int64) func(*events.Aggregate[bank.AccountState]) error {
	return func(a *events.Aggregate[bank.AccountState]) error { return bank.Open(a, owner, overdraft) }
}

func deposit(c int64) func(*events.Aggregate[bank.AccountState]) error {
	return func(a *events.Aggregate[bank.AccountState]) error { return bank.Deposit(a, c) }
}

func withdraw(c int64) func(*events.Aggregate[bank.AccountState]) error {
	return func(a *events.Aggregate[bank.AccountState]) error { return bank.Withdraw(a, c) }
}

// handle runs one message as the consumer does on its one-by-one path: in a transaction of
// its own, behind the group's inbox.
func handle(ctx context.Context, pool *pgxpool.Pool, p *balances.Projection, m *consume.Message) error {
	h := consume.Chain(p, consume.Inbox{Group: group}.Middleware())
	return consume.PostgresUnit(pool)(ctx, func(ctx context.Context) error { return h.Handle(ctx, m) })
}

func wantBalance(tb testing.TB, p *balances.Projection, id string, cents, version int64, status bank.Status) {
	tb.Helper()
	b, err := p.Get(context.Background(), id)
	must(tb, err)
	if b.BalanceCents != cents || b.Version != version || b.Status != status {
		tb.Fatalf("balance = %d cents at version %d, %s; want %d at %d, %s", b.BalanceCents, b.Version, b.Status, cents, version, status)
	}
}

func TestProjection_Handle(t *testing.T) {
	ctx := context.Background()
	pool, p := setup(t)
	id := uuid.NewString()
	ms := messages(t, id, open("Ada", 500), deposit(1000), withdraw(1400),
		deposit(400), func(a *events.Aggregate[bank.AccountState]) error { return bank.Close(a, "done") })
	t.Run("OK", func(t *testing.T) {
		for _, m := range ms[:3] {
			must(t, handle(ctx, pool, p, m))
		}
		wantBalance(t, p, id, -400, 2, bank.StatusOpen)
		b, err := p.Get(ctx, id)
		must(t, err)
		if b.Owner != "Ada" || b.OverdraftLimitCents != 500 || !b.UpdatedAt.Equal(ms[2].Event.RecordedAt) {
			t.Errorf("balance = %+v", b)
		}
	})
	t.Run("Redelivered", func(t *testing.T) {
		for _, m := range ms[:3] {
			must(t, handle(ctx, pool, p, m))
		}
		wantBalance(t, p, id, -400, 2, bank.StatusOpen)
		var claims int
		must(t, pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = $1`, group).Scan(&claims))
		if claims != 3 {
			t.Errorf("inbox holds %d events, want 3", claims)
		}
	})
	t.Run("AppliedBeforeUnderAnotherID", func(t *testing.T) {
		// Past the inbox, the version guard still keeps an event from applying twice.
		again := *ms[1]
		again.Event.EventID = uuid.Must(uuid.NewV7())
		must(t, handle(ctx, pool, p, &again))
		wantBalance(t, p, id, -400, 2, bank.StatusOpen)
	})
	t.Run("ErrGap", func(t *testing.T) {
		err := handle(ctx, pool, p, ms[4])
		if !errors.Is(err, balances.ErrGap) || consume.IsPermanent(err) {
			t.Fatalf("error = %v, want a retryable ErrGap", err)
		}
		wantBalance(t, p, id, -400, 2, bank.StatusOpen)
		// The refused event was not claimed: it applies once its predecessor has.
		must(t, handle(ctx, pool, p, ms[3]))
		must(t, handle(ctx, pool, p, ms[4]))
		wantBalance(t, p, id, 0, 4, bank.StatusClosed)
	})
	t.Run("Malformed", func(t *testing.T) {
		bad := messages(t, uuid.NewString(), open("Bob", 0))[0]
		bad.Event.Data = []byte(`{"account_id": 7}`)
		if err := handle(ctx, pool, p, bad); !consume.IsPermanent(err) {
			t.Fatalf("error = %v, want a permanent one", err)
		}
		if _, err := p.Get(ctx, bad.Event.StreamID[len("account-"):]); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("get = %v, want ErrNotFound", err)
		}
	})
}

func TestProjection_HandleBatch(t *testing.T) {
	ctx := context.Background()
	pool, p := setup(t)
	unit := consume.PostgresUnit(pool)
	batch := func(ms []*consume.Message) error {
		return unit(ctx, func(ctx context.Context) error { return p.HandleBatch(ctx, ms) })
	}
	ida, idb := uuid.NewString(), uuid.NewString()
	a := messages(t, ida, open("Ada", 0), deposit(700), withdraw(200))
	b := messages(t, idb, open("Bob", 100), withdraw(100))
	t.Run("OK", func(t *testing.T) {
		must(t, batch([]*consume.Message{a[0], b[0], a[1], b[1], a[2]}))
		wantBalance(t, p, ida, 500, 2, bank.StatusOpen)
		wantBalance(t, p, idb, -100, 1, bank.StatusOpen)
	})
	more := messages(t, ida, open("Ada", 0), deposit(700), withdraw(200), deposit(1))
	more[3].Event.EventID = uuid.Must(uuid.NewV7())
	t.Run("ClaimedBefore", func(t *testing.T) {
		// a[2] is in the inbox: the batch applies nothing, and Handle sorts it out.
		if err := batch([]*consume.Message{a[2], more[3]}); err == nil {
			t.Fatal("a batch with an event applied before succeeded")
		}
		wantBalance(t, p, ida, 500, 2, bank.StatusOpen)
	})
	t.Run("Gap", func(t *testing.T) {
		gap := messages(t, idb, open("Bob", 100), withdraw(100), deposit(5), deposit(6))
		if err := batch([]*consume.Message{gap[3]}); err == nil {
			t.Fatal("a batch with a gap succeeded")
		}
		wantBalance(t, p, idb, -100, 1, bank.StatusOpen)
	})
	t.Run("List", func(t *testing.T) {
		got, err := p.List(ctx, "", 10)
		must(t, err)
		if len(got) != 2 || got[0].AccountID > got[1].AccountID {
			t.Fatalf("list = %+v, want both accounts in id order", got)
		}
		rest, err := p.List(ctx, got[0].AccountID, 10)
		must(t, err)
		if len(rest) != 1 || rest[0].AccountID != got[1].AccountID {
			t.Errorf("list after %s = %+v", got[0].AccountID, rest)
		}
	})
}

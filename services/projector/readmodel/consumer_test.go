package readmodel_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// handleBatch runs HandleBatch on evs in one transaction that commits only on success.
func (e *env) handleBatch(tb testing.TB, evs []events.Envelope) error {
	tb.Helper()
	ctx := context.Background()
	ms := make([]*consume.Message, len(evs))
	for i, ev := range evs {
		ms[i] = &consume.Message{Event: ev, Key: []byte(ev.StreamID)}
	}
	return consume.PostgresUnit(e.pool)(ctx, func(ctx context.Context) error {
		return e.proj.HandleBatch(ctx, ms)
	})
}

func TestHandleBatch_EqualsApplyingOneByOne(t *testing.T) {
	var evs []events.Envelope
	for range 3 {
		id, ue := userLife()
		evs = append(evs, ue...)
		evs = append(evs, orderLife(id)...)
		evs = append(evs, orderLife(id)...)
	}
	batched, single := newEnv(t), newEnv(t)
	if err := batched.handleBatch(t, evs); err != nil {
		t.Fatal(err)
	}
	single.mustApply(t, evs...)
	sameState(t, dump(t, batched.proj), dump(t, single.proj))

	// Delivered again, the batch is not clean: it fails and changes nothing, and the events
	// one by one are skipped by the inbox.
	before := dump(t, batched.proj)
	if err := batched.handleBatch(t, evs[:5]); err == nil {
		t.Error("HandleBatch of events applied before succeeded; want a failure that sends them one by one")
	}
	sameState(t, dump(t, batched.proj), before)
}

func TestHandleBatch_GapOrRefusalFailsWhole(t *testing.T) {
	id, ue := userLife()
	order := orderLife(id)
	e := newEnv(t)
	// A gap: the order's events without its creation.
	if err := e.handleBatch(t, append(ue, order[1:]...)); err == nil {
		t.Error("a batch with a gap succeeded")
	}
	if s := dump(t, e.proj); len(s.Users) != 0 || len(s.Orders) != 0 {
		t.Errorf("a failed batch left %d users and %d orders", len(s.Users), len(s.Orders))
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_inbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a failed batch left %d inbox rows", n)
	}
}

// TestHandleBatch_RandomBatchesEqualOneByOne applies the writer's events in batches of random
// sizes, so that streams start, continue and end in every batch, and compares with Apply.
func TestHandleBatch_RandomBatchesEqualOneByOne(t *testing.T) {
	batched := newEnv(t)
	evs := newWorkload(batched, 81).run(t, 800)
	rng := rand.New(rand.NewPCG(81, 82))
	for rest := evs; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(80))
		if err := batched.handleBatch(t, rest[:n]); err != nil {
			t.Fatalf("a batch of %d clean events failed: %v", n, err)
		}
		rest = rest[n:]
	}
	single := newEnv(t)
	single.mustApply(t, evs...)
	sameState(t, dump(t, batched.proj), dump(t, single.proj))
}

// TestHandleBatch_ContinuesRows applies the start of streams one by one and the rest in a
// batch, which reads the rows and changes them.
func TestHandleBatch_ContinuesRows(t *testing.T) {
	id, ue := userLife()
	order := orderLife(id)
	order2 := orderLife(id)
	batched, single := newEnv(t), newEnv(t)
	batched.mustApply(t, append(append(ue[:1:1], order[:5]...), order2[:1]...)...)
	if err := batched.handleBatch(t, append(append(ue[1:], order[5:]...), order2[1:]...)); err != nil {
		t.Fatal(err)
	}
	single.mustApply(t, append(append(ue, order...), order2...)...)
	sameState(t, dump(t, batched.proj), dump(t, single.proj))
}

// TestHandleBatch_UncleanFailsWhole: a batch with an event that the read models would refuse,
// skip or hold back fails and leaves nothing, neither rows nor inbox records.
func TestHandleBatch_UncleanFailsWhole(t *testing.T) {
	e := newEnv(t)
	id, ue := userLife()
	order := orderLife(id)
	e.mustApply(t, ue[0]) // applied without the inbox, as a rebuild does
	applied := newID()
	as := orderStream(applied)
	e.mustApply(t, ev(as, 0, domain.EventOrderCreated, domain.OrderCreated{UserID: id, Items: []domain.Item{}}))
	items := []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 2}}
	big := []domain.Item{{ID: "a", Name: "A", PriceCents: math.MaxInt64 - 10, Quantity: 1}}
	fresh := func(its []domain.Item, then ...events.Envelope) []events.Envelope {
		total, _ := domain.TotalCents(its)
		s := orderStream(newID())
		out := []events.Envelope{ev(s, 0, domain.EventOrderCreated, domain.OrderCreated{UserID: id, Items: its, TotalCents: total})}
		for i, x := range then {
			x.StreamID, x.Category, x.Version = s, domain.OrderCategory, int64(i+1)
			out = append(out, x)
		}
		return out
	}
	// For the cases of fresh orders, the batch without its last event applies cleanly: the
	// last one makes the difference.
	control := newEnv(t)
	for _, tc := range []struct {
		name string
		evs  []events.Envelope
	}{
		{"RowAhead", ue},
		{"Gap", append(ue[2:], order[0])},
		{"CreatedTwice", []events.Envelope{ev(as, 0, domain.EventOrderCreated, domain.OrderCreated{UserID: id, Items: []domain.Item{}})}},
		{"RemoveMissingItem", fresh(items,
			ev("", 0, domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "b", Name: "B", PriceCents: 1, Quantity: 1}}),
			ev("", 0, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "ghost"}))},
		{"RemoveTwice", fresh(items,
			ev("", 0, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "a"}),
			ev("", 0, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "a"}))},
		{"ConfirmWrongTotal", fresh(items, ev("", 0, domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: 199}))},
		{"TotalOverflows", fresh(big, ev("", 0, domain.EventItemAdded, domain.ItemAdded{Item: domain.Item{ID: "b", Name: "B", PriceCents: 11, Quantity: 1}}))},
		{"Malformed", append(order[:3:3], ev(order[0].StreamID, 3, domain.EventItemAdded, `{"item":`))},
		{"Repeated", append(order[:3:3], order[2])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.evs[0].StreamID, "order-") && tc.evs[0].StreamID != order[0].StreamID && tc.evs[0].StreamID != as {
				if err := control.handleBatch(t, tc.evs[:len(tc.evs)-1]); err != nil {
					t.Fatalf("without its last event the batch fails too: %v", err)
				}
			}
			before := dump(t, e.proj)
			if err := e.handleBatch(t, append(order[:2:2], tc.evs...)); err == nil {
				t.Fatal("the batch succeeded")
			}
			sameState(t, dump(t, e.proj), before)
			var n int
			if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_inbox`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("a failed batch left %d inbox rows", n)
			}
		})
	}
}

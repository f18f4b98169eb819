package readmodel_test

import (
	"context"
	"testing"

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

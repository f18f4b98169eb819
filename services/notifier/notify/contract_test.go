package notify_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/domain/domaintest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// TestOrders_FollowTheWriter runs every order history of the reference domain's events
// through the notifier's handler and checks that what it keeps of each order (owner, lines,
// total) is the writer's aggregate's state, and that the events the aggregate refuses are
// refused as Permanent and change nothing. Only the events that change an order's lines are
// handled: the others send email (the notifier's workload tests cover those), and the
// notifier keeps nothing of them.
func TestOrders_FollowTheWriter(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	n := notify.New(pool, nil, nil, notify.Options{})
	for _, h := range domaintest.Histories(newID()) {
		if h.Category() != domain.OrderCategory {
			continue
		}
		t.Run(h.Name, func(t *testing.T) {
			taken := h.Events
			if h.Refused {
				taken = taken[:len(taken)-1]
			}
			taken = slices.DeleteFunc(slices.Clone(taken), func(e events.Envelope) bool { return !changesLines(e) })
			// Each event twice: a redelivery changes nothing.
			for _, e := range append(slices.Clone(taken), taken...) {
				if err := n.Handle(ctx, &consume.Message{Event: e}); err != nil {
					t.Fatalf("%s %s@%d: %v", e.Type, e.StreamID, e.Version, err)
				}
			}
			if last := h.Events[len(h.Events)-1]; h.Refused && changesLines(last) {
				if err := n.Handle(ctx, &consume.Message{Event: last}); !consume.IsPermanent(err) {
					t.Errorf("%s %s@%d, which the writer refuses: got %v, want a Permanent error", last.Type, last.StreamID, last.Version, err)
				}
			}
			id := uuid.MustParse(h.StreamID[len(domain.OrderCategory)+1:])
			got, version, ok, err := n.OrderOf(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			w := h.Order
			if len(taken) == 0 {
				if ok {
					t.Errorf("an order whose creation the writer refuses: got %+v; want none", got)
				}
				return
			}
			if want := taken[len(taken)-1].Version; !ok || version != want || got.UserID.String() != w.UserID || !slices.Equal(got.Items, w.Items) || got.TotalCents != w.TotalCents {
				t.Errorf("notifier %+v (version %d, found %v);\nwriter: %+v", got, version, ok, w)
			}
		})
	}
}

// changesLines reports whether e is one of the events that tell the notifier an order's owner
// and lines.
func changesLines(e events.Envelope) bool {
	return e.Type == domain.EventOrderCreated || e.Type == domain.EventItemAdded || e.Type == domain.EventItemRemoved
}

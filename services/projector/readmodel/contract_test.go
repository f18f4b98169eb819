package readmodel_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/domain/domaintest"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// TestReadModels_FollowTheWriter runs every history of the reference domain's events through
// the read models, one event at a time (Apply) and as one batch (HandleBatch), and checks that
// each row is the writer's aggregate's state, and that the events the aggregate refuses are
// refused as Permanent and change nothing.
func TestReadModels_FollowTheWriter(t *testing.T) {
	for _, mode := range []string{"OneByOne", "Batch"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			user := newID()
			for _, h := range domaintest.Histories(user) {
				t.Run(h.Name, func(t *testing.T) {
					taken := h.Events
					if h.Refused {
						taken = taken[:len(taken)-1]
					}
					if mode == "Batch" && len(taken) > 0 {
						if err := e.handleBatch(t, taken); err != nil {
							t.Fatalf("HandleBatch of the events the writer takes: %v", err)
						}
					} else {
						e.mustApply(t, taken...)
					}
					if h.Refused {
						last := h.Events[len(h.Events)-1]
						err := e.apply(t, last)
						if !consume.IsPermanent(err) {
							t.Errorf("%s %s@%d, which the writer refuses: got %v, want a Permanent error", last.Type, last.StreamID, last.Version, err)
						}
					}
					checkRow(t, e, h, int64(len(taken))-1)
				})
			}
		})
	}
}

// checkRow compares the read model's row of h's stream with the writer's state at version.
func checkRow(t *testing.T, e *env, h domaintest.History, version int64) {
	t.Helper()
	ctx := context.Background()
	id := uuid.MustParse(h.StreamID[len(h.Category())+1:])
	switch h.Category() {
	case domain.UserCategory:
		got, err := e.proj.User(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		w := h.User
		if got.Version != version || got.Email != w.Email || got.Name != w.Name || got.Status != w.Status ||
			got.DeactivationReason != w.DeactivationReason {
			t.Errorf("read model %+v;\nwriter at version %d: %+v", got, version, w)
		}
	case domain.OrderCategory:
		got, err := e.proj.Order(ctx, id)
		if version < 0 {
			if !errors.Is(err, events.ErrNotFound) {
				t.Errorf("an order whose creation the writer refuses: got %+v, %v; want no row", got, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		w := h.Order
		if got.Version != version || got.UserID.String() != w.UserID || got.Status != w.Status ||
			!slices.Equal(got.Items, w.Items) || got.TotalCents != w.TotalCents || got.ItemCount != len(w.Items) ||
			got.CancellationReason != w.CancellationReason {
			t.Errorf("read model %+v;\nwriter at version %d: %+v", got, version, w)
		}
	default:
		t.Fatalf("unknown category of %s", h.StreamID)
	}
}

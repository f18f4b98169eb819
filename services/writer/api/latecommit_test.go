package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
)

// A client that pages GET /v1/events forward with next_after still receives an event whose
// transaction took a lower position than commands committed after it, and itself committed
// after the client had read past them.
func TestAPI_AllStreamLateCommit(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	ev, err := events.NewEvent("OrderCreated", map[string]any{"late": true})
	if err != nil {
		t.Fatal(err)
	}
	late, err := e.store.AppendTx(ctx, tx, "order-late", events.NoStream(), []events.Event{ev}, events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.createUser(t)
	e.createUser(t)

	var positions []int64
	after := int64(0)
	read := func() {
		t.Helper()
		for {
			var p allPage
			e.do(t, "GET", fmt.Sprintf("/v1/events?after=%d&limit=1", after), nil).into(t, http.StatusOK, &p)
			for _, ev := range p.Events {
				positions = append(positions, ev.GlobalPosition)
			}
			after = p.NextAfter
			if len(p.Events) == 0 {
				return
			}
		}
	}
	read()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	read()
	if want := []int64{late.FirstPosition, late.FirstPosition + 1, late.FirstPosition + 2}; !slices.Equal(positions, want) {
		t.Errorf("paging with next_after read positions %v, want %v: the event committed late is skipped", positions, want)
	}
}

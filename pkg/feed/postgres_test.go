package feed_test

import (
	"context"
	"slices"
	"testing"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/feed"
)

// On the PostgreSQL store, a subscriber receives an append that took a lower position than
// appends committed before it, once it commits, and before them: nothing goes out past an
// open append.
func TestFeed_LateCommit(t *testing.T) {
	ctx := t.Context()
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	var f *feed.Feed
	store := postgres.New(pool, postgres.Options{OnAppend: func() { f.Wake() }})
	f = newFeed(t, feed.Config{Source: store})
	sub, err := f.Subscribe(ctx, feed.Filter{After: feed.Now})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	e, err := events.NewEvent("OrderCreated", map[string]bool{"late": true})
	if err != nil {
		t.Fatal(err)
	}
	late, err := store.AppendTx(ctx, tx, "order-late", events.NoStream(), []events.Event{e}, events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	early := appendTo(t, store, "order-early", "OrderCreated", 2)
	quiet(t, sub)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	store.Wake()
	want := []int64{late.FirstPosition, early.FirstPosition, early.LastPosition}
	if got := positions(receive(t, sub, 3)); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

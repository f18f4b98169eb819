package events_test

import (
	"context"
	"maps"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/inmem"
)

// AppendOptions.Metadata goes on every event a Repository saves; an event's own keys win.
func TestRepository_SaveMetadata(t *testing.T) {
	store := inmem.New(inmem.Options{})
	repo := &events.Repository[account]{Store: store, Def: accounts}
	a := repo.New("acc-1")
	if err := a.Record("AccountOpened", struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Record("MoneyDeposited", amount{5}); err != nil {
		t.Fatal(err)
	}
	a.Pending()[1].Metadata = map[string]string{"actor": "own"}
	if _, err := repo.Save(context.Background(), a, events.AppendOptions{Metadata: map[string]string{"actor": "alice", "actor_kind": "token"}}); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadStream(context.Background(), "account-acc-1", 0, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"actor": "alice", "actor_kind": "token"}, {"actor": "own", "actor_kind": "token"}}
	for i, ev := range evs {
		if !maps.Equal(ev.Metadata, want[i]) {
			t.Errorf("event %d metadata %v, want %v", i, ev.Metadata, want[i])
		}
	}
}

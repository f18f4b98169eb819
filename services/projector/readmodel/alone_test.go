package readmodel_test

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// TestConsumer_HandleAlone: on the one-by-one path the Consumer records an event in the inbox
// in the round trip that begins the transaction, takes the switch lock and reads the
// generation; the event's statement and the commit follow. A redelivery is skipped.
func TestConsumer_HandleAlone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var schema string
	if err := e.pool.QueryRow(ctx, `select current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	pool, rt := testenv.CountingPool(t, schema)
	p := readmodel.New(pool, readmodel.Options{})
	handle := readmodel.AloneHandler(p, consume.Config{Group: "alone"})
	id := newID()
	s := userStream(id)
	created := ev(s, 0, domain.EventUserCreated, domain.UserCreated{UserID: id.String(), Email: "a@example.com", Name: "A"})
	renamed := ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("B")})
	deliver := func(ev events.Envelope, trips int64) {
		t.Helper()
		before := rt.Trips()
		rt.Log()
		if err := handle(ctx, &consume.Message{Topic: "annals.user", Key: []byte(ev.StreamID), Event: ev, Attempt: 1}); err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
		if got := rt.Trips() - before; got != trips {
			t.Errorf("%s: %d round trips, want %d: %q", ev.Type, got, trips, rt.Log())
		}
	}
	deliver(created, 3)
	deliver(renamed, 3)
	deliver(created, 2) // the lock, the generation and the claim, which finds it; the commit
	u, err := p.User(ctx, id)
	if err != nil || u.Version != 1 || u.Name != "B" {
		t.Fatalf("got %+v, %v; want version 1 named B", u, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = 'alone'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("the inbox has %d events of the group, want 2", n)
	}
}

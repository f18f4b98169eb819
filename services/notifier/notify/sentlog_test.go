package notify_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// TestSentLog_Record: a row with its user's lock is written in one round trip, as one
// transaction, and a row of the same event stays as it is.
func TestSentLog_Record(t *testing.T) {
	owner, schema := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.Migrate(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	pool, rt := testenv.CountingPool(t, schema)
	log := notify.NewSentLog(pool)
	row := notify.Notification{EventID: uuid.Must(uuid.NewV7()), EventType: "UserCreated", StreamID: "user-x", Kind: "welcome",
		To: "a@example.com", Subject: "Hello", MessageID: "m@annals.local", Status: notify.StatusSent, UserID: uuid.Must(uuid.NewV7())}
	for i, subject := range []string{"Hello", "Again"} {
		row.Subject = subject
		before := rt.Trips()
		rt.Log()
		if err := log.Record(ctx, row); err != nil {
			t.Fatal(err)
		}
		if got := rt.Trips() - before; got != 1 {
			t.Errorf("record %d: %d round trips, want 1: %q", i+1, got, rt.Log())
		}
	}
	got, _, err := log.List(ctx, notify.SentQuery{EventID: row.EventID})
	if err != nil || len(got) != 1 || got[0].Subject != "Hello" {
		t.Fatalf("got %+v, %v; want the first row", got, err)
	}
}

package notify_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// accepting is a Mailer whose server accepts every email at once.
type accepting struct{}

func (accepting) Send(context.Context, sender.Email) error { return nil }

// BenchmarkHandleWelcome is the notifier's cost per welcome email, the SMTP server aside: each
// op handles one UserCreated through Handle (the sent log's check, the email, its record) with
// a mailer that accepts at once. It reports the round trips to PostgreSQL, the statements,
// and the CPU time of the server and of this process per event.
func BenchmarkHandleWelcome(b *testing.B) {
	owner, schema := testenv.SchemaPool(b)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, owner, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := notify.Migrate(ctx, owner, nil); err != nil {
		b.Fatal(err)
	}
	pool, rt := testenv.CountingPool(b, schema)
	tpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	n := notify.New(pool, accepting{}, tpl, notify.Options{})
	handle := func() {
		id := uuid.Must(uuid.NewV7())
		data, err := json.Marshal(domain.UserCreated{UserID: id.String(), Email: "u" + id.String()[:8] + "@example.com", Name: "Ada"})
		if err != nil {
			b.Fatal(err)
		}
		e := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: "user-" + id.String(), Category: domain.UserCategory,
			Type: domain.EventUserCreated, SchemaVersion: 1, Data: data, RecordedAt: time.Now()}
		if err := n.Handle(ctx, &consume.Message{Topic: "users", Key: []byte(e.StreamID), Event: e, Attempt: 1}); err != nil {
			b.Fatal(err)
		}
	}
	rt.Bench(b, "event", 4, handle)
}

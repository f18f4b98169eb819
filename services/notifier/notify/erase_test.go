package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// sealed is a user's email and name encrypted with their data key, as the writer records them.
func sealed(t *testing.T, keys *shred.Keyring, id uuid.UUID, clear string) string {
	t.Helper()
	v, err := keys.Encrypt(context.Background(), id.String(), clear)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// holding returns the notifier's tables with a row that holds one of the values.
func (h *harness) holding(values ...string) []string {
	h.tb.Helper()
	ctx := context.Background()
	rows, err := h.pool.Query(ctx, `select table_name from information_schema.tables
		where table_schema = current_schema() and table_name like 'annals_notifier_%'`)
	if err != nil {
		h.tb.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.tb.Fatal(err)
	}
	var out []string
	for _, table := range tables {
		rows, err := h.pool.Query(ctx, `select t::text from `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			h.tb.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			h.tb.Fatal(err)
		}
		for _, s := range texts {
			for _, v := range values {
				if strings.Contains(strings.ToLower(s), strings.ToLower(v)) {
					out = append(out, table+": "+v)
				}
			}
		}
	}
	return out
}

// TestNotifier_EncryptedPersonalData: the welcome and the order emails go to the clear address
// of a user whose email and name the events carry encrypted; a user whose data key is
// destroyed gets no email, each suppressed with reason erased, and the notifier's tables hold
// none of their personal data.
func TestNotifier_EncryptedPersonalData(t *testing.T) {
	t.Parallel()
	keys := shred.NewKeyring(shredtest.NewKEK(t), shred.NewMemoryKeyStore(), shred.Options{CacheTTL: -1})
	h := newHarness(t, setup{keys: keys})
	kept, gone, order, goneOrder := newID(), newID(), newID(), newID()
	items := []domain.Item{{ID: "a", Name: "A", PriceCents: 500, Quantity: 1}}
	keptEmail, goneEmail := h.address("kept"), h.address("gone")
	users := h.publish(
		userCreated(kept, sealed(t, keys, kept, keptEmail), sealed(t, keys, kept, "Kept Person")),
		userCreated(gone, sealed(t, keys, gone, goneEmail), sealed(t, keys, gone, "Gone Person")),
	)
	if err := keys.Erase(context.Background(), gone.String()); err != nil {
		t.Fatal(err)
	}
	orders := h.publish(orderCreated(order, kept, items), orderConfirmed(order, 1, 500),
		orderCreated(goneOrder, gone, items), orderConfirmed(goneOrder, 1, 500))
	h.start()
	h.waitSent(4, 30*time.Second)
	sent := h.sent()
	for _, ev := range []uuid.UUID{users[0].EventID, orders[1].EventID} {
		if r := sent[ev]; r.Status != notify.StatusSent || r.To != keptEmail {
			t.Errorf("email of the user kept: %+v", r)
		}
	}
	for _, ev := range []uuid.UUID{users[1].EventID, orders[3].EventID} {
		if r := sent[ev]; r.Status != notify.StatusSuppressed || r.Reason != notify.ReasonErased || r.To != notify.Erased {
			t.Errorf("email of the erased user: %+v, want suppressed (erased)", r)
		}
	}
	h.mailpit.WaitCount(t, "to:"+keptEmail, 2, 10*time.Second)
	if n, err := h.mailpit.Count(context.Background(), "to:"+goneEmail); err != nil || n != 0 {
		t.Errorf("Mailpit has %d emails to the erased user (%v)", n, err)
	}
	if got := h.holding(goneEmail, "Gone Person"); len(got) > 0 {
		t.Errorf("the erased user's personal data is in %v", got)
	}
	if got := h.holding(keptEmail); len(got) == 0 {
		t.Errorf("the kept user's email is in no table")
	}
	if n := h.count(`select count(*) from annals_notifier_users where user_id = $1 and erased_at is not null and email = '' and name = ''`, gone); n != 1 {
		t.Errorf("the directory has no tombstone of the erased user")
	}
}

// TestNotifier_UserPersonalDataErased: once a user's UserPersonalDataErased reaches the
// directory, the sent log's rows of the user's emails lose recipient and subject, the
// directory keeps a tombstone without email and name, and a later order email is suppressed
// (erased) rather than sent or waited for. Another user's rows are left alone.
func TestNotifier_UserPersonalDataErased(t *testing.T) {
	t.Parallel()
	keys := shred.NewKeyring(shredtest.NewKEK(t), shred.NewMemoryKeyStore(), shred.Options{CacheTTL: -1})
	h := newHarness(t, setup{keys: keys})
	gone, kept, order, later := newID(), newID(), newID(), newID()
	items := []domain.Item{{ID: "a", Name: "A", PriceCents: 500, Quantity: 1}}
	goneEmail, keptEmail := h.address("erased"), h.address("stays")
	h.publish(
		userCreated(gone, sealed(t, keys, gone, goneEmail), sealed(t, keys, gone, "Erin Erased")),
		profileUpdated(gone, 1, nil, ptr(sealed(t, keys, gone, "Erin Renamed"))),
		userCreated(kept, sealed(t, keys, kept, keptEmail), sealed(t, keys, kept, "Stan Stays")),
	)
	h.publish(orderCreated(order, gone, items), orderConfirmed(order, 1, 500))
	h.start()
	h.waitSent(3, 30*time.Second)
	if got := h.holding(goneEmail, "Erin Erased", "Erin Renamed"); len(got) == 0 {
		t.Fatalf("the user's personal data is in no table before the erasure")
	}

	if err := keys.Erase(context.Background(), gone.String()); err != nil {
		t.Fatal(err)
	}
	h.publish(notifiertest.Event{StreamID: "user-" + gone.String(), Version: 2, Type: domain.EventUserPersonalDataErased,
		Data: domain.UserPersonalDataErased{UserID: gone.String(), ErasedAt: time.Now().UTC()}})
	notifiertest.WaitFor(t, 20*time.Second, "the erasure in the directory", func() bool {
		return h.count(`select count(*) from annals_notifier_users where user_id = $1 and erased_at is not null`, gone) == 1
	})
	if got := h.holding(goneEmail, "Erin Erased", "Erin Renamed"); len(got) > 0 {
		t.Errorf("the erased user's personal data is in %v", got)
	}
	if n := h.count(`select count(*) from annals_notifier_sent where recipient = $1 and subject = $1`, notify.Erased); n != 2 {
		t.Errorf("%d rows of the sent log redacted, want 2 (welcome, confirmation)", n)
	}
	if got := h.holding(keptEmail, "Stan Stays"); len(got) < 2 {
		t.Errorf("the other user's data is only in %v", got)
	}

	evs := h.publish(orderCreated(later, gone, items), orderConfirmed(later, 1, 500))
	h.waitSent(4, 30*time.Second)
	if r := h.sent()[evs[1].EventID]; r.Status != notify.StatusSuppressed || r.Reason != notify.ReasonErased || r.To != notify.Erased {
		t.Errorf("order email after the erasure: %+v, want suppressed (erased)", r)
	}
	if got := h.holding(goneEmail, "Erin Erased", "Erin Renamed"); len(got) > 0 {
		t.Errorf("the erased user's personal data is in %v", got)
	}
}

package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// The notifier's dependencies failing for a while: the database answering errors that are
// its own or the moment's, the mail server answering 4xx, the directory behind the order
// topic. None of them is a fault of the event: every email goes out once, nothing is
// dead-lettered.

// failures is how often an injected failure repeats: more than the group's attempts (3).
const failures = 8

// inject makes the next failures writes to table fail with action, run by a trigger (a RAISE
// with a SQLSTATE). It returns how often the trigger ran so far, counted by a sequence, which
// rolled-back transactions do not undo.
func (h *harness) inject(table, action string) func() int {
	h.tb.Helper()
	name := "inject_" + table
	if _, err := h.pool.Exec(context.Background(), fmt.Sprintf(`
		create sequence %[1]s;
		create function %[1]s() returns trigger language plpgsql as $$
		begin
			if nextval('%[1]s') <= %[2]d then %[3]s; end if;
			return new;
		end $$;
		create trigger %[1]s before insert or update on %[4]s for each row execute function %[1]s();`,
		name, failures, action, table)); err != nil {
		h.tb.Fatal(err)
	}
	return func() int { return h.count(`select last_value from ` + name) }
}

func raise(code string) string {
	return fmt.Sprintf(`raise exception 'injected failure' using errcode = '%s'`, code)
}

// record appends the events to the event store, as the writer does before the relay
// publishes them.
func (h *harness) record(evs ...notifiertest.Event) {
	h.tb.Helper()
	store := postgres.New(h.pool, postgres.Options{})
	for _, ev := range evs {
		e, err := events.NewEvent(ev.Type, ev.Data)
		if err != nil {
			h.tb.Fatal(err)
		}
		if _, err := store.Append(context.Background(), ev.StreamID, events.Any(), []events.Event{e}, events.AppendOptions{}); err != nil {
			h.tb.Fatal(err)
		}
	}
}

// settle waits until the sent log has n rows or something was dead-lettered, then checks
// that the sent log has n rows and the dead-letter topic nothing.
func (h *harness) settle(n int, within time.Duration) {
	h.tb.Helper()
	notifiertest.WaitFor(h.tb, within, fmt.Sprintf("%d rows in the sent log or a dead letter", n), func() bool {
		return h.count(`select count(*) from annals_notifier_sent`) >= n || len(h.dead()) > 0
	})
	if dead := h.dead(); len(dead) != 0 {
		h.tb.Fatalf("%d dead letters, want none; first: %s", len(dead), notifiertest.Header(dead[0], kafkawire.HeaderError))
	}
	if got := h.count(`select count(*) from annals_notifier_sent`); got != n {
		h.tb.Fatalf("the sent log has %d rows, want %d", got, n)
	}
}

// behind is annals_notifier_directory_behind_total: the order emails that paused the group
// because the directory lacked a user the event store has.
func (h *harness) behind() float64 {
	h.tb.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "annals_notifier_directory_behind_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestNotifier_TransientDatabaseErrors injects each transient SQLSTATE into the notifier's
// writes, more often than the group's attempts: into the order table (the group's handler),
// into the sent log (after the server accepted the email) and into the user directory (read
// outside the group). Every email arrives once and nothing is dead-lettered.
func TestNotifier_TransientDatabaseErrors(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"40P01", "40001", "57014", "25006", "53100"} {
		t.Run("Orders_"+code, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, setup{partitions: 1})
			ran := h.inject("annals_notifier_orders", raise(code))
			u, o := newID(), newID()
			h.publish(userCreated(u, h.address("buyer"), "Buyer"),
				orderCreated(o, u, []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 1}}), orderConfirmed(o, 1, 100))
			h.start()
			h.settle(2, 60*time.Second)
			if n := ran(); n <= failures {
				t.Errorf("the trigger ran %d times, want more than the %d failures it injects", n, failures)
			}
		})
	}
	t.Run("SentLog", func(t *testing.T) {
		t.Parallel()
		srv := notifiertest.NewSMTPServer(t)
		h := newHarness(t, setup{smtpAddr: srv.Addr(), partitions: 1})
		h.inject("annals_notifier_sent", raise("40001"))
		h.publish(userCreated(newID(), h.address("once"), "Once"))
		h.start()
		h.settle(1, 60*time.Second)
		// The email went out before the sent log's row could be written: it must not go out
		// again while the row is retried.
		if got := srv.Received(); len(got) != 1 {
			t.Errorf("the server received the email %d times, want once", len(got))
		}
	})
	t.Run("Directory", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, setup{partitions: 1, userWait: 2 * time.Second})
		ran := h.inject("annals_notifier_users", raise("40P01"))
		u, o := newID(), newID()
		user := userCreated(u, h.address("known"), "Known")
		h.record(user)
		h.publish(user, orderCreated(o, u, []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 1}}), orderConfirmed(o, 1, 100))
		h.start()
		h.settle(2, 60*time.Second)
		if n := h.count(`select count(*) from annals_notifier_users where email = $1`, h.address("known")); n != 1 {
			t.Errorf("the directory has %d rows of the user, want 1: its event was skipped", n)
		}
		if n := ran(); n <= failures {
			t.Errorf("the trigger ran %d times, want more than the %d failures it injects", n, failures)
		}
	})
}

// TestNotifier_DirectoryBehind: the user of an order is in the event store, but its
// UserCreated reaches the user topic only long after NOTIFIER_USER_WAIT (the relay behind on
// that stream, the directory slow after a restart). The directory is a dependency that is not
// ready: the group pauses, again and again, counting each pause, and the confirmation goes
// out once the user is known. Nothing is dead-lettered.
func TestNotifier_DirectoryBehind(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{userWait: 500 * time.Millisecond})
	u, o := newID(), newID()
	user := userCreated(u, h.address("late"), "Late")
	h.record(user)
	confirmed := orderConfirmed(o, 1, 3998)
	confirmed.EventID = newID()
	h.publish(orderCreated(o, u, []domain.Item{{ID: "a", Name: "A", PriceCents: 1999, Quantity: 2}}), confirmed)
	h.start()
	notifiertest.WaitFor(t, 30*time.Second, "the group to pause three times for the directory, or a dead letter", func() bool {
		return h.behind() >= 3 || len(h.dead()) > 0
	})
	if dead := h.dead(); len(dead) != 0 {
		t.Fatalf("%d dead letters while the directory was behind, want none; first: %s", len(dead), notifiertest.Header(dead[0], kafkawire.HeaderError))
	}
	if n := h.count(`select count(*) from annals_notifier_sent`); n != 0 {
		t.Fatalf("%d emails before the user is known", n)
	}
	h.publish(user)
	h.settle(2, 30*time.Second)
	if row := h.sent()[confirmed.EventID]; row.To != h.address("late") || row.Status != notify.StatusSent {
		t.Errorf("confirmation: %+v", row)
	}
}

// TestNotifier_TransientSMTPReplies: the mail server answers 4xx, more often than the group's
// attempts, to MAIL FROM for every email, to RCPT TO for one recipient and to the end of the
// message for another. Every email arrives once; nothing is dead-lettered.
func TestNotifier_TransientSMTPReplies(t *testing.T) {
	t.Parallel()
	srv := notifiertest.NewSMTPServer(t)
	h := newHarness(t, setup{smtpAddr: srv.Addr(), partitions: 1})
	busy, full, fine := h.address("busy"), h.address("full"), h.address("fine")
	srv.DeferMail(421, failures)
	srv.Defer(busy, failures)
	srv.DeferData(full, 452, failures)
	h.publish(userCreated(newID(), busy, "Busy"), userCreated(newID(), full, "Full"), userCreated(newID(), fine, "Fine"))
	h.start()
	h.settle(3, 60*time.Second)
	got := map[string]int{}
	for _, r := range srv.Received() {
		for _, to := range r.To {
			got[strings.ToLower(to)]++
		}
	}
	if got[busy] != 1 || got[full] != 1 || got[fine] != 1 || len(got) != 3 {
		t.Errorf("the server received %v, want one email to each of %s, %s and %s", got, busy, full, fine)
	}
	if n := srv.Attempts(busy); n <= failures {
		t.Errorf("RCPT TO %s came %d times, want more than the %d deferrals", busy, n, failures)
	}
}

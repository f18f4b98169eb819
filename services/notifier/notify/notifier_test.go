package notify_test

import (
	"bytes"
	"context"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// TestNotifier_EveryEmailOnce runs 500 users and 1,000 orders through the notifier, published
// before it starts (so order events race their users' events), and checks that every email
// arrived in Mailpit exactly once, to the right address, with the right subject and text.
func TestNotifier_EveryEmailOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	w := newWorkload(h, 500, 1000, 1)
	h.publish(w.userEvents...)
	h.publish(w.orderEvents...)
	start := time.Now()
	h.start()
	h.waitSent(len(w.mails), 50*time.Second)
	t.Logf("%d emails sent in %s", len(w.mails), time.Since(start).Round(time.Millisecond))
	checkMail(t, h, w.mails, 20*time.Second)

	sent := h.sent()
	for _, m := range w.mails {
		row, ok := sent[m.event]
		if !ok || row.Status != notify.StatusSent || row.Kind != string(m.kind) || !strings.EqualFold(row.To, m.to) ||
			row.MessageID != notify.MessageID(m.event, "annals.local") {
			t.Errorf("sent log of %s: %+v (present %v), want %s to %s", m.event, row, ok, m.kind, m.to)
		}
	}
	if dead := h.dead(); len(dead) != 0 {
		t.Errorf("%d dead letters, want none; first: %s", len(dead), notifiertest.Header(dead[0], "error"))
	}
	// The directory followed the profile updates and deactivations.
	for id, email := range w.renamed {
		if n := h.count(`select count(*) from annals_notifier_users where user_id = $1 and email = $2 and name like 'Renamed %' and version = 1`, id, email); n != 1 {
			t.Errorf("directory: user %s does not have the updated address %s", id, email)
		}
	}
	for _, id := range w.deactivated {
		if n := h.count(`select count(*) from annals_notifier_users where user_id = $1 and status = 'deactivated' and deactivated_at is not null`, id); n != 1 {
			t.Errorf("directory: user %s is not deactivated", id)
		}
	}
}

// TestNotifier_SMTPDown takes the mail server away for 10 s in the middle of a run (a proxy
// in front of Mailpit refuses connections and cuts the open ones) and checks that the emails
// due meanwhile arrive once it is back: none lost, none doubled, nothing dead-lettered.
func TestNotifier_SMTPDown(t *testing.T) {
	t.Parallel()
	proxy := notifiertest.NewProxy(t, testenv.SMTPAddr(t))
	h := newHarness(t, setup{smtpAddr: proxy.Addr()})
	h.start()

	before := newWorkload(h, 30, 30, 2)
	h.publish(before.userEvents...)
	h.publish(before.orderEvents...)
	h.waitSent(len(before.mails), 30*time.Second)

	proxy.Down()
	downAt := time.Now()
	during := newWorkload(h, 60, 80, 3)
	h.publish(during.userEvents...)
	h.publish(during.orderEvents...)
	// Hold the outage for 10 s, checking that nothing gets through meanwhile.
	for time.Since(downAt) < 10*time.Second {
		if got := h.count(`select count(*) from annals_notifier_sent`); got != len(before.mails) {
			t.Fatalf("the sent log grew to %d rows while the mail server was down", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	proxy.Up(t)
	upAt := time.Now()
	h.waitSent(len(before.mails)+len(during.mails), 30*time.Second)
	t.Logf("%d emails due during the outage arrived %s after the server came back", len(during.mails), time.Since(upAt).Round(time.Millisecond))
	checkMail(t, h, append(before.mails, during.mails...), 20*time.Second)
	if dead := h.dead(); len(dead) != 0 {
		t.Errorf("%d dead letters, want none; first: %s", len(dead), notifiertest.Header(dead[0], "error"))
	}
}

// TestNotifier_CrashInTheSMTPWindow cuts the connection right after the server received the
// end of a message, before its reply: the notifier cannot know the email went out, sends it
// again, and the second copy has the same Message-ID. That is the one duplicate the package
// documents; the sent log still has one row.
func TestNotifier_CrashInTheSMTPWindow(t *testing.T) {
	t.Parallel()
	proxy := notifiertest.NewProxy(t, testenv.SMTPAddr(t))
	h := newHarness(t, setup{smtpAddr: proxy.Addr()})
	proxy.CutAfterDot()
	h.start()
	id := newID()
	ev := userCreated(id, h.address("window"), "Window")
	ev.EventID = newID()
	h.publish(ev)
	h.waitSent(1, 30*time.Second)
	if proxy.Cuts() != 1 {
		t.Fatalf("the proxy cut %d connections in the window, want 1", proxy.Cuts())
	}
	h.mailpit.WaitCount(t, "to:"+h.domain, 2, 10*time.Second)
	msgs, err := h.mailpit.Search(context.Background(), "to:"+h.domain)
	if err != nil {
		t.Fatal(err)
	}
	want := notify.MessageID(ev.EventID, "annals.local")
	for _, m := range msgs {
		if m.MessageID != want {
			t.Errorf("Message-ID %q, want %q on both copies", m.MessageID, want)
		}
	}
}

// TestNotifier_RejectedGoesToDLQ uses an SMTP server that refuses one recipient for good
// (550) and another one twice for now (451): the first email goes to the dead-letter topic
// with the reason and parks its stream; the second arrives once, after the retries.
func TestNotifier_RejectedGoesToDLQ(t *testing.T) {
	t.Parallel()
	srv := notifiertest.NewSMTPServer(t)
	h := newHarness(t, setup{smtpAddr: srv.Addr()})
	bounce, later, fine := h.address("bounce"), h.address("later"), h.address("fine")
	srv.Reject(bounce)
	srv.Defer(later, 2)
	b, l, f := newID(), newID(), newID()
	order := newID()
	evs := h.publish(
		userCreated(b, bounce, "Bounce"), userCreated(l, later, "Later"), userCreated(f, fine, "Fine"),
		profileUpdated(b, 1, nil, ptr("Bounce Again")),
	)
	h.publish(orderCreated(order, f, []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 1}}), orderConfirmed(order, 1, 100))
	h.start()
	h.waitSent(3, 30*time.Second)
	// Dead letters are written at least once: a write that failed is written again.
	var created, parked []string
	notifiertest.WaitFor(t, 20*time.Second, "the refused event and the next one of its stream in the DLQ", func() bool {
		created, parked = nil, nil
		for _, m := range h.dead() {
			switch reason := notifiertest.Header(m, "error"); notifiertest.Header(m, "event-type") {
			case domain.EventUserCreated:
				created = append(created, reason)
			case domain.EventUserProfileUpdated:
				parked = append(parked, reason)
			default:
				t.Fatalf("dead letter of %s: %s", notifiertest.Header(m, "event-type"), reason)
			}
		}
		return len(created) > 0 && len(parked) > 0
	})
	for _, r := range created {
		if !strings.Contains(r, "550") || !strings.Contains(r, "RCPT TO") || !strings.Contains(r, b.String()) {
			t.Errorf("dead letter reason %q, want the 550 at RCPT TO for user %s", r, b)
		}
		// A dead letter outlives an erasure of the user: it names the user, never the address.
		if strings.Contains(strings.ToLower(r), strings.ToLower(bounce)) || strings.Contains(r, "bounce@") {
			t.Errorf("dead letter reason %q holds the recipient's address", r)
		}
	}
	for _, r := range parked {
		if !strings.HasPrefix(r, "parked") {
			t.Errorf("dead letter reason %q, want the stream's next event parked", r)
		}
	}
	if _, ok := h.sent()[evs[0].EventID]; ok {
		t.Error("the refused email is in the sent log")
	}
	if got := srv.Attempts(later); got != 3 {
		t.Errorf("RCPT TO %s came %d times, want 3 (two 451, then accepted)", later, got)
	}
	got := map[string]int{}
	for _, r := range srv.Received() {
		for _, to := range r.To {
			got[to]++
		}
	}
	if got[fine] != 2 || got[later] != 1 || got[bounce] != 0 || len(got) != 2 {
		t.Errorf("the server received %v, want %s twice (welcome, confirmation) and %s once", got, fine, later)
	}
}

// TestNotifier_HeaderInjection sends to a user whose name carries a header of its own: it
// arrives encoded in the display name, with no Bcc and no other recipient. A user whose
// address carries one goes to the dead-letter topic.
func TestNotifier_HeaderInjection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	evil := "x@evil-" + h.domain
	name := "Eve\r\nBcc: " + evil
	eve, frank, order := newID(), newID(), newID()
	h.publish(userCreated(eve, h.address("eve"), name), userCreated(frank, h.address("frank")+"\r\nBcc: "+evil, "Frank"))
	h.publish(orderCreated(order, eve, []domain.Item{{ID: "a", Name: "A", PriceCents: 100, Quantity: 1}}), orderConfirmed(order, 1, 100))
	h.start()
	h.waitSent(2, 30*time.Second)
	h.mailpit.WaitCount(t, "to:"+h.domain, 2, 10*time.Second)
	ctx := context.Background()
	msgs, err := h.mailpit.Search(ctx, "to:"+h.domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range msgs {
		if len(s.To) != 1 || s.To[0].Address != h.address("eve") || len(s.Cc) != 0 || len(s.Bcc) != 0 {
			t.Errorf("%q: to %+v cc %+v bcc %+v, want only %s", s.Subject, s.To, s.Cc, s.Bcc, h.address("eve"))
		}
		if s.To[0].Name != name {
			t.Errorf("display name %q, want %q (encoded on the way, decoded by the reader)", s.To[0].Name, name)
		}
		headers, err := h.mailpit.Headers(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := headers["Bcc"]; ok {
			t.Errorf("%q has a Bcc header: %v", s.Subject, headers["Bcc"])
		}
		raw, err := h.mailpit.Raw(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header["Bcc"]; got != nil {
			t.Errorf("%q: raw Bcc header %q", s.Subject, got)
		}
		to := msg.Header["To"]
		if len(to) != 1 || !strings.Contains(to[0], "=?") || strings.Contains(to[0], evil) {
			t.Errorf("%q: To header %q, want one address with the name as an encoded word", s.Subject, to)
		}
		list, err := (&mail.AddressParser{WordDecoder: &mime.WordDecoder{}}).ParseList(msg.Header.Get("To"))
		if err != nil || len(list) != 1 || list[0].Address != h.address("eve") || list[0].Name != name {
			t.Errorf("%q: To parses as %+v (%v)", s.Subject, list, err)
		}
	}
	if n, err := h.mailpit.Count(ctx, "bcc:"+evil); err != nil || n != 0 {
		t.Errorf("%d messages with %s in Bcc (%v), want none", n, evil, err)
	}
	var reasons []string
	notifiertest.WaitFor(t, 20*time.Second, "a dead letter", func() bool {
		reasons = reasons[:0]
		for _, m := range h.dead() {
			reasons = append(reasons, notifiertest.Header(m, "error"))
		}
		return len(reasons) > 0
	})
	for _, r := range reasons {
		if !strings.Contains(r, "not a valid email address") || !strings.Contains(r, frank.String()) {
			t.Errorf("dead letter reason %q, want frank's invalid address, named by frank's id", r)
		}
		if strings.Contains(r, "frank@") || strings.Contains(r, evil) {
			t.Errorf("dead letter reason %q holds the address", r)
		}
	}
}

// TestNotifier_OrderWaitsForItsUser publishes an order before its user: the confirmation waits
// and goes out once the user is known. An order of a user who never appears goes to the
// dead-letter topic after NOTIFIER_USER_WAIT.
func TestNotifier_OrderWaitsForItsUser(t *testing.T) {
	t.Parallel()
	t.Run("UserArrives", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, setup{userWait: 20 * time.Second})
		u, o := newID(), newID()
		items := []domain.Item{{ID: "a", Name: "A", PriceCents: 1999, Quantity: 2}}
		confirmed := orderConfirmed(o, 1, 3998)
		confirmed.EventID = newID()
		h.publish(orderCreated(o, u, items), confirmed)
		h.start()
		notifiertest.WaitFor(t, 20*time.Second, "the order to be known", func() bool {
			return h.count(`select count(*) from annals_notifier_orders`) == 1
		})
		if n := h.count(`select count(*) from annals_notifier_sent`); n != 0 {
			t.Fatalf("%d emails before the user is known", n)
		}
		h.publish(userCreated(u, h.address("late"), "Late"))
		h.waitSent(2, 30*time.Second)
		row := h.sent()[confirmed.EventID]
		if row.To != h.address("late") || row.Status != notify.StatusSent {
			t.Errorf("confirmation: %+v", row)
		}
		if dead := h.dead(); len(dead) != 0 {
			t.Errorf("%d dead letters", len(dead))
		}
	})
	t.Run("UserNeverArrives", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, setup{userWait: time.Second})
		u, o := newID(), newID()
		h.publish(orderCreated(o, u, []domain.Item{}), orderConfirmed(o, 1, 0))
		h.start()
		var reasons []string
		notifiertest.WaitFor(t, 30*time.Second, "a dead letter", func() bool {
			reasons = reasons[:0]
			for _, m := range h.dead() {
				reasons = append(reasons, notifiertest.Header(m, "error"))
			}
			return len(reasons) > 0
		})
		for _, r := range reasons {
			if !strings.Contains(r, "no address for user "+u.String()) {
				t.Errorf("reason %q", r)
			}
		}
		if n := h.count(`select count(*) from annals_notifier_sent`); n != 0 {
			t.Errorf("%d rows in the sent log", n)
		}
	})
}

// TestNotifier_DeactivatedUser sends the email of an order event recorded before its user's
// deactivation and skips (and logs as skipped) the one recorded after it.
func TestNotifier_DeactivatedUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	u, early, late := newID(), newID(), newID()
	t0 := time.Now().UTC().Add(-time.Hour)
	at := func(ev notifiertest.Event, d time.Duration) notifiertest.Event {
		ev.RecordedAt, ev.EventID = t0.Add(d), newID()
		return ev
	}
	items := []domain.Item{{ID: "a", Name: "A", PriceCents: 500, Quantity: 1}}
	users := h.publish(at(userCreated(u, h.address("dee"), "Dee"), 0), at(userDeactivated(u, 1, "left"), 10*time.Minute))
	h.start()
	notifiertest.WaitFor(t, 20*time.Second, "the deactivation in the directory", func() bool {
		return h.count(`select count(*) from annals_notifier_users where status = 'deactivated'`) == 1
	})
	orders := h.publish(
		at(orderCreated(early, u, items), time.Minute), at(orderConfirmed(early, 1, 500), 2*time.Minute),
		at(orderCreated(late, u, items), 3*time.Minute), at(orderConfirmed(late, 1, 500), 20*time.Minute),
	)
	h.waitSent(3, 30*time.Second)
	sent := h.sent()
	if r := sent[users[0].EventID]; r.Status != notify.StatusSent {
		t.Errorf("welcome: %+v", r)
	}
	if r := sent[orders[1].EventID]; r.Status != notify.StatusSent {
		t.Errorf("confirmation before the deactivation: %+v", r)
	}
	if r := sent[orders[3].EventID]; r.Status != notify.StatusSkipped || !strings.Contains(r.Reason, "deactivated") {
		t.Errorf("confirmation after the deactivation: %+v, want skipped", r)
	}
	h.mailpit.WaitCount(t, "to:"+h.domain, 2, 10*time.Second)
}

// TestDirectory_VersionGuard delivers a user's events twice and out of their first order: the
// directory ends at the newest version, and a restarted directory resumes where it stopped.
func TestDirectory_VersionGuard(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{partitions: 1})
	u := newID()
	created := userCreated(u, h.address("a"), "A")
	created.EventID = newID()
	updated := profileUpdated(u, 1, ptr(h.address("b")), nil)
	updated.EventID = newID()
	renamed := profileUpdated(u, 2, nil, ptr("B"))
	renamed.EventID = newID()
	h.publish(created, updated, created, renamed, updated)
	h.start()
	notifiertest.WaitFor(t, 20*time.Second, "the directory to read the topic", func() bool {
		return h.count(`select coalesce(sum(next_offset), 0) from annals_notifier_directory_offsets`) == 5
	})
	check := func() {
		t.Helper()
		if n := h.count(`select count(*) from annals_notifier_users where user_id = $1 and email = $2 and name = 'B' and version = 2`,
			u, h.address("b")); n != 1 {
			var email, name string
			var v int64
			_ = h.pool.QueryRow(context.Background(), `select email, name, version from annals_notifier_users where user_id = $1`, u).Scan(&email, &name, &v)
			t.Errorf("directory row = %s %s v%d, want %s B v2", email, name, v, h.address("b"))
		}
	}
	check()
	h.halt()
	// A restart reads on from the stored position: only the new event.
	h.publish(userDeactivated(u, 3, "bye"))
	h.start()
	notifiertest.WaitFor(t, 20*time.Second, "the deactivation", func() bool {
		return h.count(`select count(*) from annals_notifier_users where status = 'deactivated' and version = 3`) == 1
	})
	if n := h.count(`select next_offset from annals_notifier_directory_offsets`); n != 6 {
		t.Errorf("next offset %d, want 6", n)
	}
}

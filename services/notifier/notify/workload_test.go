package notify_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// wantMail is an email the test expects, by the event it is about.
type wantMail struct {
	event    uuid.UUID
	kind     templates.Kind
	to       string
	subject  string
	fragment string // a piece of the text body
}

// workload is users and orders with every event of their lives, and the emails they call for.
type workload struct {
	userEvents  []notifiertest.Event
	orderEvents []notifiertest.Event
	mails       []wantMail
	renamed     map[uuid.UUID]string // user -> the address after the profile update
	deactivated []uuid.UUID
}

// newWorkload makes users and orders in the harness's mail domain. A tenth of the users change
// their name and address, another tenth are deactivated; the rest place the orders, which are
// confirmed, cancelled, confirmed and then cancelled, confirmed and shipped, or left pending,
// some after items were added or removed. Events of different streams are interleaved.
func newWorkload(h *harness, users, orders int, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &workload{renamed: map[uuid.UUID]string{}}
	type person struct {
		id    uuid.UUID
		email string
		name  string
	}
	var buyers []person
	var later [][]notifiertest.Event // per stream, the events after the first
	for i := range users {
		p := person{id: newID(), email: h.address(fmt.Sprintf("user%d", i)), name: fmt.Sprintf("User %d", i)}
		if i%7 == 3 {
			p.name = fmt.Sprintf("Zoë Ñúñez-%d", i) // beyond ASCII: an encoded display name
		}
		ev := userCreated(p.id, p.email, p.name)
		ev.EventID = newID()
		w.userEvents = append(w.userEvents, ev)
		w.mails = append(w.mails, wantMail{event: ev.EventID, kind: templates.Welcome, to: p.email,
			subject: "Welcome to Annals, " + p.name, fragment: "you can sign in as " + p.email})
		switch i % 10 {
		case 1:
			email := h.address(fmt.Sprintf("user%d.new", i))
			later = append(later, []notifiertest.Event{profileUpdated(p.id, 1, &email, ptr("Renamed "+p.name))})
			w.renamed[p.id] = email
		case 2:
			later = append(later, []notifiertest.Event{userDeactivated(p.id, 1, "left")})
			w.deactivated = append(w.deactivated, p.id)
		default:
			buyers = append(buyers, p)
		}
	}
	w.userEvents = append(w.userEvents, interleave(later)...)

	var streams [][]notifiertest.Event
	for j := range orders {
		owner := buyers[j%len(buyers)]
		id := newID()
		var items []domain.Item
		for k := range 1 + rng.IntN(3) {
			items = append(items, domain.Item{ID: fmt.Sprintf("sku-%d-%d", j, k), Name: fmt.Sprintf("Thing %d", k),
				PriceCents: int64(100 + rng.IntN(10000)), Quantity: int64(1 + rng.IntN(5))})
		}
		evs := []notifiertest.Event{orderCreated(id, owner.id, items)}
		v := int64(1)
		if rng.IntN(10) < 3 {
			it := domain.Item{ID: fmt.Sprintf("sku-%d-x", j), Name: "Extra", PriceCents: 250, Quantity: 2}
			items = append(items, it)
			evs = append(evs, itemAdded(id, v, it))
			v++
		}
		if len(items) > 1 && rng.IntN(10) < 2 {
			evs = append(evs, itemRemoved(id, v, items[0].ID))
			items = items[1:]
			v++
		}
		total, _ := domain.TotalCents(items)
		confirm := func() {
			ev := orderConfirmed(id, v, total)
			ev.EventID = newID()
			evs = append(evs, ev)
			w.mails = append(w.mails, wantMail{event: ev.EventID, kind: templates.OrderConfirmed, to: owner.email,
				subject: "Your order " + id.String() + " is confirmed", fragment: "Total: " + templates.Money(total)})
			v++
		}
		cancel := func() {
			reason := fmt.Sprintf("reason %d", j)
			ev := orderCancelled(id, v, reason)
			ev.EventID = newID()
			evs = append(evs, ev)
			w.mails = append(w.mails, wantMail{event: ev.EventID, kind: templates.OrderCancelled, to: owner.email,
				subject: "Your order " + id.String() + " is cancelled", fragment: "Reason: " + reason})
			v++
		}
		switch r := rng.IntN(100); {
		case r < 50:
			confirm()
		case r < 75:
			cancel()
		case r < 85:
			confirm()
			cancel()
		case r < 90:
			confirm()
			evs = append(evs, orderShipped(id, v))
		}
		streams = append(streams, evs)
	}
	w.orderEvents = interleave(streams)
	return w
}

// interleave takes the first event of every stream, then the second, and so on.
func interleave(streams [][]notifiertest.Event) []notifiertest.Event {
	var out []notifiertest.Event
	for i := 0; ; i++ {
		added := false
		for _, s := range streams {
			if i < len(s) {
				out = append(out, s[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// checkMail checks that Mailpit holds exactly the expected emails of the harness's domain:
// each once (by its Message-ID), to the right address, with the right subject and a piece of
// the right text.
func checkMail(t testing.TB, h *harness, want []wantMail, within time.Duration) {
	t.Helper()
	query := "to:" + h.domain
	h.mailpit.WaitCount(t, query, len(want), within)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs, err := h.mailpit.Search(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]notifiertest.Summary{}
	for _, m := range msgs {
		if _, dup := byID[m.MessageID]; dup {
			t.Errorf("message %s arrived twice", m.MessageID)
		}
		byID[m.MessageID] = m
	}
	type check struct {
		want wantMail
		id   string
	}
	var checks []check
	for _, w := range want {
		mid := notify.MessageID(w.event, "annals.local")
		m, ok := byID[mid]
		if !ok {
			t.Errorf("no email %s (%s to %s)", mid, w.kind, w.to)
			continue
		}
		if len(m.To) != 1 || !strings.EqualFold(m.To[0].Address, w.to) {
			t.Errorf("email %s went to %+v, want %s", mid, m.To, w.to)
		}
		if len(m.Cc) != 0 || len(m.Bcc) != 0 {
			t.Errorf("email %s has other recipients: cc %+v, bcc %+v", mid, m.Cc, m.Bcc)
		}
		if m.Subject != w.subject {
			t.Errorf("email %s subject %q, want %q", mid, m.Subject, w.subject)
		}
		checks = append(checks, check{w, m.ID})
	}
	// The bodies, a message at a time, from a few workers.
	work := make(chan check)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failures []string
	for range 16 {
		wg.Go(func() {
			for c := range work {
				msg, err := h.mailpit.Message(ctx, c.id)
				var problem string
				switch {
				case err != nil:
					problem = err.Error()
				case !strings.Contains(msg.Text, c.want.fragment):
					problem = fmt.Sprintf("email of event %s: text lacks %q:\n%s", c.want.event, c.want.fragment, msg.Text)
				case !strings.Contains(msg.HTML, "Annals"):
					problem = fmt.Sprintf("email of event %s: no HTML body", c.want.event)
				}
				if problem != "" {
					mu.Lock()
					failures = append(failures, problem)
					mu.Unlock()
				}
			}
		})
	}
	for _, c := range checks {
		work <- c
	}
	close(work)
	wg.Wait()
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Error(f)
	}
}

package notify_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// The actors of the tests' events.
var (
	apiKeyX  = map[string]string{auth.MetaActor: "x", auth.MetaActorKind: auth.KindAPIKey}
	tokenXI1 = map[string]string{auth.MetaActor: "x", auth.MetaActorKind: auth.KindToken, auth.MetaActorIssuer: "https://one.example"}
	tokenXI2 = map[string]string{auth.MetaActor: "x", auth.MetaActorKind: auth.KindToken, auth.MetaActorIssuer: "https://two.example"}
)

// welcomeBy is the UserCreated of a new user, recorded at at by actor.
func welcomeBy(h *harness, actor map[string]string, at time.Time, local string) notifiertest.Event {
	ev := userCreated(newID(), h.address(local), "Limited")
	ev.EventID, ev.RecordedAt, ev.Metadata = newID(), at, actor
	return ev
}

// counter is the value of the series of a counter of the notifier whose labels include
// labels (0 when it has none yet).
func (h *harness) counter(name string, labels map[string]string) float64 {
	h.tb.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func (h *harness) suppressed() float64 {
	return h.counter("annals_notifier_emails_suppressed_total", map[string]string{"reason": notify.ReasonPrincipalLimit})
}

// Each principal (kind, issuer and name together) has its own count per hour of the events'
// recording; events without an actor share one bucket; an email over the limit is recorded
// as suppressed, counted, not sent, and nothing is dead-lettered or blocked.
func TestNotifier_EmailsPerPrincipalHour(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{emailsPerPrincipalHour: 1})
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	buckets := map[string][]notifiertest.Event{
		"api key x, hour 1":        {welcomeBy(h, apiKeyX, hour.Add(time.Minute), "k1"), welcomeBy(h, apiKeyX, hour.Add(59*time.Minute), "k2")},
		"api key x, hour 2":        {welcomeBy(h, apiKeyX, hour.Add(time.Hour), "k3")},
		"token x of issuer 1":      {welcomeBy(h, tokenXI1, hour.Add(2*time.Minute), "t1")},
		"token x of issuer 2":      {welcomeBy(h, tokenXI2, hour.Add(3*time.Minute), "t2")},
		"no actor (older events)":  {welcomeBy(h, nil, hour.Add(4*time.Minute), "u1"), welcomeBy(h, nil, hour.Add(5*time.Minute), "u2")},
		"unknown kind, name alone": {welcomeBy(h, map[string]string{auth.MetaActor: "x"}, hour.Add(6*time.Minute), "n1")},
	}
	var all []notifiertest.Event
	for _, evs := range buckets {
		all = append(all, evs...)
	}
	h.publish(all...)
	h.start()
	h.settle(len(all), 60*time.Second)

	sent := h.sent()
	for name, evs := range buckets {
		statuses := map[string]int{}
		for _, ev := range evs {
			row := sent[ev.EventID]
			statuses[row.Status]++
			if row.Status == notify.StatusSuppressed && row.Reason == "" {
				t.Errorf("%s: a suppressed row without its reason", name)
			}
		}
		if statuses[notify.StatusSent] != 1 || statuses[notify.StatusSuppressed] != len(evs)-1 {
			t.Errorf("%s: %v, want 1 sent and %d suppressed", name, statuses, len(evs)-1)
		}
	}
	h.mailpit.WaitCount(t, "to:"+h.domain, len(buckets), 20*time.Second) // one email per bucket
	if got := h.suppressed(); got != 2 {
		t.Errorf("annals_notifier_emails_suppressed_total %v, want 2", got)
	}
	if n := h.count(`select count(*) from annals_notifier_principal_hours
		where actor_kind = $1 and actor = '' and actor_issuer = '' and emails = 1 and suppressed = 1`, notify.UnknownActorKind); n != 1 {
		t.Errorf("%d rows of the unknown principal's hour with one email and one suppressed, want 1", n)
	}

	// Events delivered again (one sent, one suppressed) are duplicates: not counted again.
	again := buckets["api key x, hour 1"]
	h.publish(again...)
	later := welcomeBy(h, apiKeyX, hour.Add(30*time.Minute), "k4")
	h.publish(later)
	h.settle(len(all)+1, 30*time.Second)
	duplicates := map[string]string{"kind": "welcome", "outcome": notify.OutcomeDuplicate}
	notifiertest.WaitFor(t, 30*time.Second, "the two events delivered again", func() bool {
		return h.counter("annals_notifier_emails_total", duplicates) >= 2
	})
	if row := h.sent()[later.EventID]; row.Status != notify.StatusSuppressed {
		t.Errorf("a third email of a full hour: %+v, want suppressed", row)
	}
	if got := h.suppressed(); got != 3 {
		t.Errorf("annals_notifier_emails_suppressed_total %v after a redelivery and one more, want 3", got)
	}
	if n := h.count(`select emails + suppressed from annals_notifier_principal_hours where actor_kind = $1 and hour = $2`,
		auth.KindAPIKey, hour); n != 3 {
		t.Errorf("the api key's first hour counts %d emails, want 3 (one sent, two suppressed)", n)
	}
}

// An email whose sending fails again and again is counted once: every attempt finds the
// decision of the first, so the limit is not used up by retries.
func TestNotifier_EmailsPerPrincipalHourRetriesCountOnce(t *testing.T) {
	t.Parallel()
	srv := notifiertest.NewSMTPServer(t)
	h := newHarness(t, setup{smtpAddr: srv.Addr(), partitions: 1, emailsPerPrincipalHour: 2})
	srv.DeferMail(421, failures)
	at := time.Now().UTC().Add(-time.Minute)
	h.publish(welcomeBy(h, apiKeyX, at, "a"), welcomeBy(h, apiKeyX, at, "b"))
	h.start()
	h.settle(2, 60*time.Second)
	for id, row := range h.sent() {
		if row.Status != notify.StatusSent {
			t.Errorf("event %s: %+v, want sent", id, row)
		}
	}
	if got := len(srv.Received()); got != 2 {
		t.Errorf("the server received %d emails, want 2", got)
	}
	if n := h.count(`select emails from annals_notifier_principal_hours`); n != 2 {
		t.Errorf("the hour counts %d emails after %d refusals, want 2", n, failures)
	}
}

// Two notifier processes, eight lanes each, over four partitions: one principal's emails of
// an hour stop at exactly the limit, wherever they are handled.
func TestNotifier_EmailsPerPrincipalHourAcrossProcesses(t *testing.T) {
	t.Parallel()
	const limit, users = 10, 60
	srv := notifiertest.NewSMTPServer(t)
	h := newHarness(t, setup{smtpAddr: srv.Addr(), emailsPerPrincipalHour: limit})
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	var evs []notifiertest.Event
	for i := range users {
		evs = append(evs, welcomeBy(h, tokenXI1, at.Add(time.Duration(i)*time.Second), fmt.Sprintf("p%d", i)))
	}
	base := h.consumerConfig()
	runMember(t, h.n, base)
	runMember(t, limitedNotifier(t, h, srv.Addr(), limit), base)
	h.publish(evs...)
	h.settle(users, 60*time.Second)
	statuses := map[string]int{}
	for _, row := range h.sent() {
		statuses[row.Status]++
	}
	if statuses[notify.StatusSent] != limit || statuses[notify.StatusSuppressed] != users-limit {
		t.Errorf("the sent log: %v, want %d sent and %d suppressed", statuses, limit, users-limit)
	}
	if got := len(srv.Received()); got != limit {
		t.Errorf("the server received %d emails, want %d", got, limit)
	}
}

// limitedNotifier is another notifier process on the harness's database, with the limit and
// a sender of its own to the mail server at addr.
func limitedNotifier(tb testing.TB, h *harness, addr string, limit int) *notify.Notifier {
	tb.Helper()
	snd, err := sender.New(sender.Config{Addr: addr, From: from, TLS: sender.TLSNone, Timeout: 5 * time.Second, UserAgent: "annals-notifier-test"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = snd.Close() })
	tpl, err := templates.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	return notify.New(h.pool, snd, tpl, notify.Options{MessageIDDomain: snd.Domain(), EmailsPerPrincipalHour: limit,
		Logger: testLogger(tb, slog.LevelWarn)})
}

package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// TestNotifier_RebalanceUnderSlowMailSendsEachEmailOnce runs the group with the settings a
// deployment gets from the default configuration (internal/wiring), against a mail server
// that takes a second over each email. A second member joins while the first is part-way
// through a large batch: the first must hand its partitions over before the broker evicts it,
// or the new owner sends again what the first is still sending. Every email arrives once.
func TestNotifier_RebalanceUnderSlowMailSendsEachEmailOnce(t *testing.T) {
	t.Parallel()
	const users = 200
	srv := notifiertest.NewSMTPServerWith(t, notifiertest.SMTPOptions{Delay: time.Second})
	h := newHarness(t, setup{smtpAddr: srv.Addr()})
	var evs []notifiertest.Event
	for i := range users {
		ev := userCreated(newID(), h.address(fmt.Sprintf("r%d", i)), fmt.Sprintf("Rebalance %d", i))
		ev.EventID = newID()
		evs = append(evs, ev)
	}
	h.publish(evs...)

	cfg := config.Default()
	cfg.EventSigning.Key = config.Secret(testenv.SigningKey)
	base, err := wiring.ConsumerConfig(cfg, h.pool, h.group, testLogger(t, slog.LevelInfo), nil)
	if err != nil {
		t.Fatal(err)
	}
	base.Brokers, base.Topics, base.DLQTopic = testenv.KafkaBrokers(t), []string{h.topics.User, h.topics.Order}, h.topics.DLQ
	t.Logf("group settings: batch %d, %d lanes, drain %s, session %s, heartbeat %s, rebalance %s", base.BatchSize,
		base.Lanes, base.DrainTimeout, base.SessionTimeout, base.HeartbeatInterval, base.RebalanceTimeout)

	a := runMember(t, h.n, base)
	notifiertest.WaitFor(t, 30*time.Second, "the first member to send some email", func() bool {
		return h.count(`select count(*) from annals_notifier_sent`) >= 16
	})
	b := runMember(t, newNotifier(t, h, srv.Addr()), base)
	joined := time.Now()
	h.waitSent(users, 3*time.Minute)
	t.Logf("the sent log was complete %s after the second member joined", time.Since(joined).Round(time.Millisecond))
	// Both members stop, so that nothing either still sends escapes the count.
	a()
	b()
	copies := map[string]int{}
	received := srv.Received()
	for _, r := range received {
		copies[messageID(r.Data)]++
	}
	doubled := 0
	for _, n := range copies {
		if n > 1 {
			doubled++
		}
	}
	if len(received) != users || len(copies) != users || doubled > 0 {
		t.Errorf("%d messages for %d distinct Message-IDs, %d of them sent more than once; want %d, each once",
			len(received), len(copies), doubled, users)
	}
}

// messageID is the Message-ID header of a raw message.
func messageID(raw []byte) string {
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Message-ID") {
			return strings.TrimSpace(v)
		}
		if line == "" {
			break
		}
	}
	return ""
}

// newNotifier is another notifier process on the harness's database, with a sender of its
// own to the mail server at addr.
func newNotifier(tb testing.TB, h *harness, addr string) *notify.Notifier {
	tb.Helper()
	snd, err := sender.New(sender.Config{Addr: addr, From: from, TLS: sender.TLSNone,
		Timeout: 5 * time.Second, UserAgent: "annals-notifier-test"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = snd.Close() })
	tpl, err := templates.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	return notify.New(h.pool, snd, tpl, notify.Options{MessageIDDomain: snd.Domain(), Logger: testLogger(tb, slog.LevelWarn)})
}

// runMember runs n's consumer with base until the returned function (also called when the
// test ends) stops it and waits for it.
func runMember(tb testing.TB, n *notify.Notifier, base consume.Config) func() {
	tb.Helper()
	c, err := n.Consumer(base)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("consumer: %v", err)
			}
		case <-time.After(time.Minute):
			tb.Error("the consumer did not stop within a minute")
		}
	}
	tb.Cleanup(stop)
	return stop
}

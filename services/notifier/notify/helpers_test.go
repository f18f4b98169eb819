package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

const from = "Annals <noreply@annals.local>"

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

func testLogger(tb testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: level}))
}

// setup configures a harness.
type setup struct {
	smtpAddr   string        // Mailpit's when empty
	userWait   time.Duration // 20 s when zero
	rate       float64
	partitions int // 4 when zero
	logLevel   slog.Level
	// emailsPerPrincipalHour is Options.EmailsPerPrincipalHour (0: no limit).
	emailsPerPrincipalHour int
	keys                   notify.Decrypter // Options.Keys
}

// harness is a notifier on a schema, topics and a mail domain of the test's own, run
// in-process against the real PostgreSQL, Kafka and SMTP server.
type harness struct {
	tb      testing.TB
	pool    *pgxpool.Pool
	topics  notifiertest.Topics
	domain  string
	mailpit *notifiertest.Mailpit
	sender  *sender.Sender
	n       *notify.Notifier
	reg     *prometheus.Registry // the notifier's metrics
	group   string
	stop    context.CancelFunc
	done    chan struct{}
}

func newHarness(tb testing.TB, s setup) *harness {
	tb.Helper()
	if s.partitions == 0 {
		s.partitions = 4
	}
	if s.userWait == 0 {
		s.userWait = 20 * time.Second
	}
	if s.smtpAddr == "" {
		s.smtpAddr = testenv.SMTPAddr(tb)
	}
	if s.logLevel == 0 {
		s.logLevel = slog.LevelWarn
	}
	pool, _ := testenv.SchemaPool(tb)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatal(err)
	}
	if _, err := notify.Migrate(ctx, pool, nil); err != nil {
		tb.Fatal(err)
	}
	h := &harness{
		tb: tb, pool: pool, topics: notifiertest.NewTopics(tb, s.partitions, notify.Group),
		domain: notifiertest.MailDomain(tb), mailpit: notifiertest.NewMailpit(tb),
		group: "annals-notifier-" + testenv.UniqueName(tb), reg: prometheus.NewRegistry(),
	}
	snd, err := sender.New(sender.Config{Addr: s.smtpAddr, From: from, TLS: sender.TLSNone, Rate: s.rate,
		Timeout: 5 * time.Second, UserAgent: "annals-notifier-test"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = snd.Close() })
	tpl, err := templates.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	h.sender = snd
	h.n = notify.New(pool, snd, tpl, notify.Options{MessageIDDomain: snd.Domain(), UserWait: s.userWait,
		EmailsPerPrincipalHour: s.emailsPerPrincipalHour, Keys: s.keys, Logger: testLogger(tb, s.logLevel), Registerer: h.reg})
	return h
}

// consumerConfig is the group's configuration, with the short pauses of tests.
func (h *harness) consumerConfig() consume.Config {
	return consume.Config{
		Brokers: testenv.KafkaBrokers(h.tb), Group: h.group, Topics: []string{h.topics.User, h.topics.Order},
		DLQTopic: h.topics.DLQ, Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: 500, Lanes: 8,
		Attempts: 3, Backoff: 10 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		RebalanceTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second,
		Logger: testLogger(h.tb, slog.LevelError), // kafka-go's retried read errors are warnings
	}
}

// start runs the consumer group and the directory until the test ends (or stop).
func (h *harness) start() {
	h.tb.Helper()
	c, err := h.n.Consumer(h.consumerConfig())
	if err != nil {
		h.tb.Fatal(err)
	}
	dir, err := h.n.Directory(notify.DirectoryConfig{Brokers: testenv.KafkaBrokers(h.tb), Topic: h.topics.User,
		Decode: consume.SchemaDecoder(domain.Catalog()), Backoff: 10 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		Logger: testLogger(h.tb, slog.LevelError)})
	if err != nil {
		h.tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h.stop, h.done = stop, make(chan struct{})
	go func() {
		defer close(h.done)
		done := make(chan struct{})
		go func() { defer close(done); _ = dir.Run(ctx) }()
		if err := c.Run(ctx); err != nil {
			h.tb.Errorf("consumer: %v", err)
		}
		<-done
	}()
	h.tb.Cleanup(h.halt)
}

// halt stops the notifier and waits for it.
func (h *harness) halt() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.tb.Error("the notifier did not stop within 30s")
	}
}

func (h *harness) publish(evs ...notifiertest.Event) []events.Envelope {
	h.tb.Helper()
	return notifiertest.Publish(h.tb, h.topics, evs...)
}

// sent returns the sent log's rows by event id.
func (h *harness) sent() map[uuid.UUID]notify.Notification {
	h.tb.Helper()
	out := map[uuid.UUID]notify.Notification{}
	var after uuid.UUID
	for {
		rows, more, err := h.n.SentLog().List(context.Background(), notify.SentQuery{After: after, Limit: notify.MaxLimit})
		if err != nil {
			h.tb.Fatal(err)
		}
		for _, r := range rows {
			out[r.EventID] = r
		}
		if !more {
			return out
		}
		after = rows[len(rows)-1].EventID
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.tb.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.tb.Fatal(err)
	}
	return n
}

// waitSent waits until the sent log has n rows.
func (h *harness) waitSent(n int, within time.Duration) {
	h.tb.Helper()
	notifiertest.WaitFor(h.tb, within, fmt.Sprintf("%d rows in the sent log", n), func() bool {
		return h.count(`select count(*) from annals_notifier_sent`) >= n
	})
	if got := h.count(`select count(*) from annals_notifier_sent`); got != n {
		h.tb.Fatalf("the sent log has %d rows, want %d", got, n)
	}
}

func (h *harness) dead() []kafka.Message {
	h.tb.Helper()
	return notifiertest.ReadAll(h.tb, h.topics.DLQ, h.topics.Partitions)
}

// address is a mailbox in the test's domain.
func (h *harness) address(local string) string { return local + "@" + h.domain }

// Events of the domain, as the writer records them.

func userCreated(id uuid.UUID, email, name string) notifiertest.Event {
	return notifiertest.Event{StreamID: "user-" + id.String(), Version: 0, Type: domain.EventUserCreated,
		Data: domain.UserCreated{UserID: id.String(), Email: email, Name: name}}
}

func profileUpdated(id uuid.UUID, v int64, email, name *string) notifiertest.Event {
	return notifiertest.Event{StreamID: "user-" + id.String(), Version: v, Type: domain.EventUserProfileUpdated,
		Data: domain.UserProfileUpdated{Email: email, Name: name}}
}

func userDeactivated(id uuid.UUID, v int64, reason string) notifiertest.Event {
	return notifiertest.Event{StreamID: "user-" + id.String(), Version: v, Type: domain.EventUserDeactivated,
		Data: domain.UserDeactivated{Reason: reason}}
}

func orderCreated(id, userID uuid.UUID, items []domain.Item) notifiertest.Event {
	total, _ := domain.TotalCents(items)
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: 0, Type: domain.EventOrderCreated,
		Data: domain.OrderCreated{OrderID: id.String(), UserID: userID.String(), Items: items, TotalCents: total}}
}

func itemAdded(id uuid.UUID, v int64, it domain.Item) notifiertest.Event {
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: v, Type: domain.EventItemAdded, Data: domain.ItemAdded{Item: it}}
}

func itemRemoved(id uuid.UUID, v int64, itemID string) notifiertest.Event {
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: v, Type: domain.EventItemRemoved, Data: domain.ItemRemoved{ItemID: itemID}}
}

func orderConfirmed(id uuid.UUID, v, total int64) notifiertest.Event {
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: v, Type: domain.EventOrderConfirmed, Data: domain.OrderConfirmed{TotalCents: total}}
}

func orderCancelled(id uuid.UUID, v int64, reason string) notifiertest.Event {
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: v, Type: domain.EventOrderCancelled, Data: domain.OrderCancelled{Reason: reason}}
}

func orderShipped(id uuid.UUID, v int64) notifiertest.Event {
	return notifiertest.Event{StreamID: "order-" + id.String(), Version: v, Type: domain.EventOrderShipped, Data: struct{}{}}
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func ptr[T any](v T) *T { return &v }

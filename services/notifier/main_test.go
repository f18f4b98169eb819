package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// The notifier as a program, in process, configured through the environment only: its
// migrations, the consumer and the directory on the deployment's topics, a template folder,
// the sent log's route and the standard ones.
func TestNotifier(t *testing.T) {
	pool, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.SchemaURL(t, schemaName)
	topics := notifiertest.NewTopics(t, 3, notify.Group)
	templates := t.TempDir()
	if err := os.WriteFile(filepath.Join(templates, "welcome.subject.tmpl"), []byte("Hello from the folder, {{.Name}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	domainName := notifiertest.MailDomain(t)
	vars := map[string]string{
		"DATABASE_URL":           dbURL,
		"KAFKA_BROKERS":          strings.Join(testenv.KafkaBrokers(t), ","),
		"KAFKA_TOPIC_PREFIX":     topics.Prefix,
		"SMTP_ADDR":              testenv.SMTPAddr(t),
		"SMTP_FROM":              "Annals Notifier <notify@mail.annals.test>",
		"SMTP_STARTTLS":          "none",
		"NOTIFIER_TEMPLATES_DIR": templates,
		"NOTIFIER_RATE_LIMIT":    "0",
		"LOG_LEVEL":              "error",
		"EVENT_SIGNING_KEY":      testenv.SigningKey,
		"API_KEYS":               testenv.APIKeys,
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Notifier, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context, *app.Main) error{migrate, wire} {
		if err := step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	base := "http://" + m.Addr()

	user, order := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	to := "ada@" + domainName
	evs := notifiertest.Publish(t, topics,
		notifiertest.Event{StreamID: "user-" + user.String(), Type: domain.EventUserCreated,
			Data: domain.UserCreated{UserID: user.String(), Email: to, Name: "Ada"}},
		notifiertest.Event{StreamID: "order-" + order.String(), Type: domain.EventOrderCreated,
			Data: domain.OrderCreated{OrderID: order.String(), UserID: user.String(), TotalCents: 250,
				Items: []domain.Item{{ID: "pen", Name: "Pen", PriceCents: 125, Quantity: 2}}}},
		notifiertest.Event{StreamID: "order-" + order.String(), Version: 1, Type: domain.EventOrderCancelled,
			Data: domain.OrderCancelled{Reason: "out of stock"}},
	)
	mp := notifiertest.NewMailpit(t)
	mp.WaitCount(t, "to:"+domainName, 2, 60*time.Second)
	msgs, err := mp.Search(ctx, "to:"+domainName)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{}
	for _, s := range msgs {
		subjects[s.MessageID] = s.Subject
		if s.From == nil || s.From.Address != "notify@mail.annals.test" {
			t.Errorf("from %+v", s.From)
		}
	}
	if got := subjects[evs[0].EventID.String()+"@mail.annals.test"]; got != "Hello from the folder, Ada" {
		t.Errorf("welcome subject %q, want the folder's template (subjects %v)", got, subjects)
	}
	if got := subjects[evs[2].EventID.String()+"@mail.annals.test"]; got != "Your order "+order.String()+" is cancelled" {
		t.Errorf("cancellation subject %q (subjects %v)", got, subjects)
	}

	var page struct {
		Notifications []notify.Notification `json:"notifications"`
	}
	notifiertest.WaitFor(t, 10*time.Second, "the sent log's rows", func() bool {
		getJSON(t, base+"/v1/notifications?to="+url.QueryEscape(to), &page)
		return len(page.Notifications) == 2
	})
	for _, n := range page.Notifications {
		if n.Status != notify.StatusSent || n.MessageID != n.EventID.String()+"@mail.annals.test" {
			t.Errorf("sent log row %+v", n)
		}
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	getJSON(t, base+"/openapi.json", &doc)
	for _, p := range []string{"/v1/notifications", "/livez", "/readyz", "/metrics"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("/openapi.json lacks %s", p)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{`annals_notifier_emails_total{kind="welcome",outcome="sent"} 1`, "annals_consumer_processed_total", "annals_notifier_directory_events_total"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the notifier did not stop within 30s")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := testenv.Client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// One principal's commands cause at most NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR emails an hour:
// of the welcome emails of N+k users one API key created within an hour, N reach the mail
// server (Mailpit) and k are recorded as suppressed; another principal's users still get
// theirs.
func TestNotifier_EmailsPerPrincipalHour(t *testing.T) {
	const limit, over, others = 5, 3, 2
	pool, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.SchemaURL(t, schemaName)
	topics := notifiertest.NewTopics(t, 3, notify.Group)
	domainName := notifiertest.MailDomain(t)
	vars := map[string]string{
		"DATABASE_URL":                       dbURL,
		"KAFKA_BROKERS":                      strings.Join(testenv.KafkaBrokers(t), ","),
		"KAFKA_TOPIC_PREFIX":                 topics.Prefix,
		"SMTP_ADDR":                          testenv.SMTPAddr(t),
		"SMTP_STARTTLS":                      "none",
		"NOTIFIER_RATE_LIMIT":                "0",
		"NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR": fmt.Sprint(limit),
		"LOG_LEVEL":                          "error",
		"EVENT_SIGNING_KEY":                  testenv.SigningKey,
		"API_KEYS":                           testenv.APIKeys,
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Notifier, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
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
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + m.Addr()

	// Every event was recorded within one hour: the last full one, whatever the clock says
	// while the test runs.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	bot := map[string]string{auth.MetaActor: "ci-bot", auth.MetaActorKind: auth.KindAPIKey}
	alice := map[string]string{auth.MetaActor: "alice", auth.MetaActorKind: auth.KindToken, auth.MetaActorIssuer: "https://issuer.example"}
	var evs []notifiertest.Event
	add := func(actor map[string]string, local string, i int) {
		id := uuid.Must(uuid.NewV7())
		evs = append(evs, notifiertest.Event{StreamID: "user-" + id.String(), Type: domain.EventUserCreated,
			Data:       domain.UserCreated{UserID: id.String(), Email: fmt.Sprintf("%s-%d@%s", local, i, domainName), Name: "User"},
			RecordedAt: hour.Add(time.Duration(len(evs)) * time.Minute), Metadata: actor})
	}
	for i := range limit + over {
		add(bot, "bot", i)
		if i < others {
			add(alice, "alice", i)
		}
	}
	notifiertest.Publish(t, topics, evs...)

	// Every event is decided (sent or suppressed) once the sent log has a row of each; a sent
	// email's row is written after the mail server accepted it.
	var page struct {
		Notifications []notify.Notification `json:"notifications"`
	}
	notifiertest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d rows in the sent log", len(evs)), func() bool {
		getJSON(t, base+"/v1/notifications?limit=500", &page)
		return len(page.Notifications) >= len(evs)
	})
	statuses := map[string]map[string]int{"bot": {}, "alice": {}}
	for _, n := range page.Notifications {
		who, _, _ := strings.Cut(n.To, "-")
		statuses[who][n.Status]++
		if n.Status == notify.StatusSuppressed && !strings.Contains(n.Reason, "NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR") {
			t.Errorf("suppressed row without the reason: %+v", n)
		}
	}
	if got := statuses["bot"]; got[notify.StatusSent] != limit || got[notify.StatusSuppressed] != over {
		t.Errorf("the sent log of the bot's users: %v, want %d sent and %d suppressed", got, limit, over)
	}
	if got := statuses["alice"]; got[notify.StatusSent] != others || len(got) != 1 {
		t.Errorf("the sent log of alice's users: %v, want %d sent", got, others)
	}

	// Mailpit has exactly what the sent log says went out.
	mp := notifiertest.NewMailpit(t)
	mp.WaitCount(t, "to:"+domainName, limit+others, 30*time.Second)
	msgs, err := mp.Search(ctx, "to:"+domainName)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range msgs {
		for _, to := range s.To {
			who, _, _ := strings.Cut(to.Address, "-")
			got[who]++
		}
	}
	if got["bot"] != limit || got["alice"] != others {
		t.Errorf("Mailpit has %d emails to the bot's users and %d to alice's, want %d and %d", got["bot"], got["alice"], limit, others)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`annals_notifier_emails_suppressed_total{reason="principal_limit"} %d`, over),
		fmt.Sprintf(`annals_notifier_emails_total{kind="welcome",outcome="sent"} %d`, limit+others),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(b), "ci-bot") || strings.Contains(string(b), "alice") {
		t.Error("/metrics names a principal")
	}
}

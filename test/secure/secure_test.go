package secure_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/lag"
	"github.com/annals-dev/annals/pkg/relay"
)

// secureConfig is the configuration the environment gives the services, when it names a
// secured Kafka listener; otherwise the test skips.
func secureConfig(tb testing.TB) *config.Config {
	tb.Helper()
	p := kafkasec.Protocol(strings.ToUpper(os.Getenv("KAFKA_SECURITY_PROTOCOL")))
	if !p.TLS() && !p.SASL() {
		tb.Skip("KAFKA_SECURITY_PROTOCOL is not SSL, SASL_PLAINTEXT or SASL_SSL: these tests need the secured stack " +
			"(`ANNALS_SECURE=1 scripts/stack.sh up`, then `eval \"$(ANNALS_SECURE=1 scripts/stack.sh env)\"`)")
	}
	cfg, err := config.Load("", os.LookupEnv)
	if err != nil {
		tb.Fatalf("the secured stack's environment: %v", err)
	}
	if err := cfg.CheckFiles(); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// jsonEncoder publishes an event's envelope as JSON.
type jsonEncoder struct{}

func (jsonEncoder) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	b, err := json.Marshal(e)
	return b, "application/json", 1, err
}

// TestSecure_Pipeline: over the secured listener, the relay publishes the outbox, a consumer
// group reads every event, and the lag monitor, the dead-letter scan and a replay plan all
// reach the broker.
func TestSecure_Pipeline(t *testing.T) {
	cfg := secureConfig(t)
	sec, brokers := cfg.Kafka.Security(), cfg.Kafka.Brokers
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := app.CheckKafka(ctx, cfg.Kafka, nil); err != nil {
		t.Fatalf("CheckKafka: %v", err)
	}

	prefix := "secure-" + testenv.UniqueName(t)
	group := prefix + "-readers"
	topic, dlq := kafkawire.Topic(prefix, "user"), kafkawire.DeadLetterTopic(prefix, group)
	if err := relay.EnsureTopicsWith(ctx, brokers, sec, []relay.Topic{{Name: topic, Partitions: 3, ReplicationFactor: 1}, {Name: dlq, Partitions: 3, ReplicationFactor: 1}}, io.Discard); err != nil {
		t.Fatalf("EnsureTopicsWith: %v", err)
	}
	t.Cleanup(func() {
		rt, release, err := sec.RoundTripper()
		if err != nil {
			return
		}
		defer release()
		client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: rt}
		_, _ = client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic, dlq}})
	})

	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{})
	const streams, perStream = 5, 4
	for s := range streams {
		evs := make([]events.Event, perStream)
		for i := range evs {
			evs[i] = events.Event{Type: "Something", Data: []byte(`{}`)}
		}
		if _, err := store.Append(ctx, "user-"+string(rune('a'+s)), events.Any(), evs, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	r, err := relay.New(store.Outbox(), jsonEncoder{}, relay.Config{Brokers: brokers, TopicPrefix: prefix, Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(runCtx) }()

	var got atomic.Int64
	c, err := consume.New(consume.Config{
		Brokers: brokers, Group: group, Topics: []string{topic}, DLQTopic: dlq, Security: sec,
		Decode: func(m kafka.Message) (events.Envelope, error) {
			var e events.Envelope
			return e, json.Unmarshal(m.Value, &e)
		},
	}, consume.HandlerFunc(func(context.Context, *consume.Message) error { got.Add(1); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	consumerDone := make(chan error, 1)
	go func() { consumerDone <- c.Run(runCtx) }()
	for deadline := time.Now().Add(90 * time.Second); got.Load() < streams*perStream; {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer read %d of %d events in 90s (relay: %+v)", got.Load(), streams*perStream, r.Health())
		}
		time.Sleep(100 * time.Millisecond)
	}

	mon, err := lag.New(lag.Config{Brokers: brokers, Security: sec, Topics: []string{topic}, Groups: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mon.Poll(ctx); err != nil {
		t.Errorf("lag: Poll: %v", err)
	}
	if err := consume.ScanDeadLetters(ctx, consume.DeadLetterScan{Brokers: brokers, Security: sec, Topic: dlq}, func(consume.DeadLetter) error {
		return errors.New("a dead letter, when every event was handled")
	}); err != nil {
		t.Errorf("ScanDeadLetters: %v", err)
	}
	if _, err := (consume.Replayer{Brokers: brokers, Security: sec}).Plan(ctx, group, []string{topic}, time.Now().Add(-time.Hour), time.Time{}); err != nil {
		t.Errorf("Replayer.Plan: %v", err)
	}

	stop()
	if err := <-relayDone; err != nil {
		t.Errorf("relay: %v", err)
	}
	if err := <-consumerDone; err != nil {
		t.Errorf("consumer: %v", err)
	}
}

// TestSecure_Refused: settings the secured broker refuses are told apart at once, each naming
// the setting at fault.
func TestSecure_Refused(t *testing.T) {
	cfg := secureConfig(t)
	p := kafkasec.Protocol(cfg.Kafka.SecurityProtocol)
	probe := func(t *testing.T, k config.Kafka) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		err := app.CheckKafka(ctx, k, nil)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("CheckKafka took %s, want a few seconds", took)
		}
		return err
	}
	want := func(t *testing.T, err error, fault kafkasec.Fault, says string) {
		t.Helper()
		var e *kafkasec.Error
		if !errors.As(err, &e) || e.Fault != fault {
			t.Fatalf("got %v, want a refusal of %s", err, fault)
		}
		if !strings.Contains(err.Error(), says) {
			t.Errorf("got %v, want it to say %q", err, says)
		}
		if pw := cfg.Kafka.SASLPassword.Reveal(); pw != "" && strings.Contains(err.Error(), pw) {
			t.Errorf("the error shows the password")
		}
	}
	t.Run("WrongPassword", func(t *testing.T) {
		if !p.SASL() {
			t.Skip("the listener has no SASL")
		}
		k := cfg.Kafka
		k.SASLPassword = "not-the-password"
		want(t, probe(t, k), kafkasec.FaultAuthentication, "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD")
	})
	t.Run("UnknownUser", func(t *testing.T) {
		if !p.SASL() {
			t.Skip("the listener has no SASL")
		}
		k := cfg.Kafka
		k.SASLUsername = "nobody-" + testenv.UniqueName(t)
		want(t, probe(t, k), kafkasec.FaultAuthentication, `for user "nobody-`)
	})
	t.Run("Plaintext", func(t *testing.T) {
		k := cfg.Kafka
		k.SecurityProtocol, k.SASLMechanism, k.SASLUsername, k.SASLPassword, k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile = "PLAINTEXT", "", "", "", "", "", ""
		fault := kafkasec.FaultExpectsSASL
		if p.TLS() {
			fault = kafkasec.FaultExpectsTLS
		}
		want(t, probe(t, k), fault, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT")
	})
	t.Run("UntrustedCA", func(t *testing.T) {
		if !p.TLS() {
			t.Skip("the listener has no TLS")
		}
		k := cfg.Kafka
		k.TLSCAFile = testenv.NewCA(t, "stranger").CertFile
		want(t, probe(t, k), kafkasec.FaultUntrusted, "not trusted by KAFKA_TLS_CA_FILE="+k.TLSCAFile)
	})
	t.Run("SystemRoots", func(t *testing.T) {
		if !p.TLS() || cfg.Kafka.TLSCAFile == "" {
			t.Skip("the listener has no TLS of a private CA")
		}
		k := cfg.Kafka
		k.TLSCAFile = ""
		want(t, probe(t, k), kafkasec.FaultUntrusted, "system's roots")
	})
}

// TestSecure_PostgresTLS: a DATABASE_URL that asks for TLS gets a TLS session.
func TestSecure_PostgresTLS(t *testing.T) {
	secureConfig(t)
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	switch mode := u.Query().Get("sslmode"); mode {
	case "require", "verify-ca", "verify-full":
	default:
		t.Skipf("DATABASE_URL asks for sslmode %q: no TLS to check", mode)
	}
	var ssl bool
	if err := testenv.Pool(t).QueryRow(context.Background(), "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	if !ssl {
		t.Error("the session is not encrypted, with sslmode " + u.Query().Get("sslmode"))
	}
}

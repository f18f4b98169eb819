package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// TestRelay_Refused: a broker whose ACLs do not let the relay describe or write its topic
// refuses it on every try; no retry cures that. The relay stops (Run returns) with an error
// that names the ACL missing, holds no stream, and publishes nothing, instead of retrying
// for ever with a warning.
func TestRelay_Refused(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	sasl := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.Plain, Username: "relay", Password: "relay-pw", CAFile: ca.CertFile}
	for _, tt := range []struct {
		name      string
		deny      map[protocol.ApiKey]kafka.Error
		operation string
		sec       kafkasec.Security
	}{
		{"Describe", map[protocol.ApiKey]kafka.Error{protocol.Metadata: kafka.TopicAuthorizationFailed}, "Describe", kafkasec.Security{}},
		{"Write", map[protocol.ApiKey]kafka.Error{protocol.Produce: kafka.TopicAuthorizationFailed}, "Write", kafkasec.Security{}},
		{"WriteOverSASLSSL", map[protocol.ApiKey]kafka.Error{protocol.Produce: kafka.TopicAuthorizationFailed}, "Write", sasl},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool, _ := testenv.SchemaPool(t)
			if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
				t.Fatal(err)
			}
			e := &env{store: postgres.New(pool, postgres.Options{}), pool: pool, prefix: "test-" + testenv.UniqueName(t)}
			topic := kafkawire.Topic(e.prefix, "user")
			broker := &testenv.FakeKafka{Topics: map[string]int{topic: 3, kafkawire.Topic(e.prefix, "order"): 3}, Deny: tt.deny}
			if tt.sec.Protocol == kafkasec.SASLSSL {
				broker.TLS, broker.Mechanisms, broker.Password, broker.RequireSASL = ca.ServerTLS(t), []string{"PLAIN"}, tt.sec.Password, true
			}
			e.brokers = []string{broker.Start(t)}
			e.append(t, "user-1", 2, "UserRegistered")

			r, err := relay.New(e.store.Outbox(), jsonEncoder{}, relay.Config{Brokers: e.brokers, TopicPrefix: e.prefix, Security: tt.sec,
				RetryBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			var runErr error
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				cancel()
				<-done
				t.Fatalf("the relay still runs 15s after the broker first refused it (health: %+v): it retries what no retry cures", r.Health())
			}
			var refused *kafkasec.Error
			if !errors.As(runErr, &refused) || refused.Fault != kafkasec.FaultAuthorization {
				t.Fatalf("Run() = %v, want a *kafkasec.Error of authorization", runErr)
			}
			if want := tt.operation + ` on topic "` + topic + `"`; !strings.Contains(runErr.Error(), want) {
				t.Errorf("Run() = %v, want it to name the ACL missing: %s", runErr, want)
			}
			if h := r.Health(); h.State != relay.Failing || !strings.Contains(h.Error, "not authorized") {
				t.Errorf("Health() = %+v, want failing with the refusal", h)
			}
			holds, err := e.store.Outbox().Holds(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(holds) != 0 {
				t.Errorf("the relay holds %d streams for the broker's refusal, want none: it is no fault of the events", len(holds))
			}
			if waiting, err := e.store.Outbox().Waiting(context.Background()); err != nil || waiting == 0 {
				t.Errorf("Waiting() = %d, %v: the appends must stay in the outbox", waiting, err)
			}
		})
	}
}

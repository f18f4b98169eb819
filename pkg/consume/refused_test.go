package consume_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// TestConsumer_Refused: a broker whose ACLs do not let the group describe its topics, or use
// its group, refuses the consumer on every try; no retry cures that. Run stops and returns an
// error that names the ACL missing, instead of waiting or rejoining for ever.
func TestConsumer_Refused(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	sasl := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.Plain, Username: "projector", Password: "projector-pw", CAFile: ca.CertFile}
	for _, tt := range []struct {
		name string
		deny map[protocol.ApiKey]kafka.Error
		sec  kafkasec.Security
		want string
	}{
		{"DescribeTopic", map[protocol.ApiKey]kafka.Error{protocol.Metadata: kafka.TopicAuthorizationFailed}, kafkasec.Security{}, `Describe on topic "refused.user"`},
		{"ReadGroup", map[protocol.ApiKey]kafka.Error{protocol.FindCoordinator: kafka.GroupAuthorizationFailed}, kafkasec.Security{}, `Read on group "refused-projector"`},
		{"ReadGroupOverSASLSSL", map[protocol.ApiKey]kafka.Error{protocol.FindCoordinator: kafka.GroupAuthorizationFailed}, sasl,
			`do not grant User:projector (Security.Username) Read on group "refused-projector"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			broker := &testenv.FakeKafka{Topics: map[string]int{"refused.user": 3}, Deny: tt.deny}
			if tt.sec.Protocol == kafkasec.SASLSSL {
				broker.TLS, broker.Mechanisms, broker.Password, broker.RequireSASL = ca.ServerTLS(t), []string{"PLAIN"}, tt.sec.Password, true
			}
			c, err := consume.New(consume.Config{
				Brokers: []string{broker.Start(t)}, Group: "refused-projector", Topics: []string{"refused.user"}, DLQTopic: "refused.dlq", Security: tt.sec,
				Decode: func(kafka.Message) (events.Envelope, error) { return events.Envelope{}, nil },
			}, consume.HandlerFunc(func(context.Context, *consume.Message) error { return nil }))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			var runErr error
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				cancel()
				<-done
				t.Fatal("the consumer still runs 15s after the broker first refused it: it retries what no retry cures")
			}
			var refused *kafkasec.Error
			if !errors.As(runErr, &refused) || refused.Fault != kafkasec.FaultAuthorization {
				t.Fatalf("Run() = %v, want a *kafkasec.Error of authorization", runErr)
			}
			if !strings.Contains(runErr.Error(), tt.want) {
				t.Errorf("Run() = %v, want it to name the ACL missing: %s", runErr, tt.want)
			}
		})
	}
}

// TestNew_Security: a Security that cannot work is refused by New, naming its field.
func TestNew_Security(t *testing.T) {
	_, err := consume.New(consume.Config{
		Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"t"}, DLQTopic: "d",
		Decode:   func(kafka.Message) (events.Envelope, error) { return events.Envelope{}, nil },
		Security: kafkasec.Security{Protocol: kafkasec.SSL, CAFile: t.TempDir() + "/missing.crt"},
	}, consume.HandlerFunc(func(context.Context, *consume.Message) error { return nil }))
	var ce *kafkasec.ConfigError
	if !errors.As(err, &ce) || ce.Field != "CAFile" {
		t.Fatalf("New() error = %v, want a *kafkasec.ConfigError of CAFile", err)
	}
}

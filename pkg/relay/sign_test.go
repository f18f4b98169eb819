package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
	"github.com/annals-dev/annals/pkg/signing"
)

// With a Signer, every record carries a signature of its key, value and headers as the relay
// published them, which a Verifier of the same key accepts.
func TestRelay_SignsRecords(t *testing.T) {
	e := newEnv(t)
	k, err := signing.ParseKey("test-1:" + "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signing.NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	e.append(t, "user-1", 3, "Something")
	e.append(t, "order-1", 2, "Something")
	e.start(t, relay.Config{Signer: signer})

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: e.brokers, GroupID: "test-" + testenv.UniqueName(t),
		GroupTopics: []string{kafkawire.Topic(e.prefix, "user"), kafkawire.Topic(e.prefix, "order")},
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d of 5 records: %v", i, err)
		}
		if err := verifier.Verify(m); err != nil {
			t.Errorf("%s@%d: %v", m.Key, m.Offset, err)
		}
	}
}

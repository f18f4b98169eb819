package testenv

import (
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/signing"
)

// SigningKey is the key the tests' relays sign with and their consumers accept
// (EVENT_SIGNING_KEY): a test key, never a deployment's.
const SigningKey = "test-1:annals-test-signing-key-0123456789abcdef"

var testSigner = func() *signing.Signer {
	k, err := signing.ParseKey(SigningKey)
	if err == nil {
		var s *signing.Signer
		if s, err = signing.NewSigner(k); err == nil {
			return s
		}
	}
	panic("testenv: SigningKey: " + err.Error())
}()

// Sign signs m with SigningKey, as a relay configured with it does: the signed headers must
// be in m already.
func Sign(m *kafka.Message) { testSigner.Sign(m) }

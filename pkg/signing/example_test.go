package signing_test

import (
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/signing"
)

// The relay signs with the current key; consumers accept it and, while keys rotate, the
// previous one. A record changed on the way does not verify.
func Example() {
	current, err := signing.ParseKey("k2:uV3f1yq6oR0Jb2m8u1K3WcQ0fZ5hX9eL7dT4sN2aP6g=")
	if err != nil {
		panic(err)
	}
	previous, err := signing.ParseKey("k1:Yk9tE2wq8Zr5Lm1Nv3Bx7Cs4Dh6Gj0Fa2Uo8Ip5Ty1c=")
	if err != nil {
		panic(err)
	}
	signer, err := signing.NewSigner(current)
	if err != nil {
		panic(err)
	}
	verifier, err := signing.NewVerifier(current, previous)
	if err != nil {
		panic(err)
	}

	m := kafka.Message{Key: []byte("user-1"), Value: []byte("..."), Headers: []kafka.Header{
		{Key: kafkawire.HeaderEventType, Value: []byte("UserCreated")},
	}}
	signer.Sign(&m)
	fmt.Println("signed:", verifier.Verify(m) == nil)

	m.Headers[0].Value = []byte("UserDeactivated")
	fmt.Println("changed:", errors.Is(verifier.Verify(m), signing.ErrBadSignature))
	fmt.Println("key:", current)
	// Output:
	// signed: true
	// changed: true
	// key: k2:[redacted]
}

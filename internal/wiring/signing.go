package wiring

import (
	"errors"
	"fmt"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/signing"
)

// errNoSigningKey says how to give the services a key, or to do without one.
var errNoSigningKey = errors.New("EVENT_SIGNING_KEY (event_signing.key) is not set: the relay signs every record with it " +
	"and the consumers accept only records signed with it, so that no one else can write events to the topics; " +
	"set it to <id>:<secret> (for example k1:$(openssl rand -base64 32)), the same in every service, " +
	"or set EVENT_SIGNING_REQUIRED=false for development")

// Signer is the relay's signer: the key of EVENT_SIGNING_KEY. Without a key it is nil (the
// records go out unsigned) when EVENT_SIGNING_REQUIRED=false, and an error otherwise.
func Signer(cfg *config.Config) (*signing.Signer, error) {
	s := cfg.EventSigning
	if s.Key == "" {
		if s.Required {
			return nil, errNoSigningKey
		}
		return nil, nil
	}
	k, err := signing.ParseKey(s.Key.Reveal())
	if err != nil {
		return nil, fmt.Errorf("EVENT_SIGNING_KEY (event_signing.key): %w", err)
	}
	return signing.NewSigner(k)
}

// Verifier is the consumers' verifier: it accepts the keys of EVENT_SIGNING_KEY and
// EVENT_SIGNING_ACCEPTED_KEYS. acceptUnsigned is true when EVENT_SIGNING_REQUIRED=false:
// records without a signature then pass unverified. Without any key it is nil (every record
// is trusted) when EVENT_SIGNING_REQUIRED=false, and an error otherwise.
func Verifier(cfg *config.Config) (v *signing.Verifier, acceptUnsigned bool, err error) {
	s := cfg.EventSigning
	keys, err := signing.ParseKeys(s.AcceptedKeys.Reveal())
	if err != nil {
		return nil, false, fmt.Errorf("EVENT_SIGNING_ACCEPTED_KEYS (event_signing.accepted_keys): %w", err)
	}
	if s.Key != "" {
		k, err := signing.ParseKey(s.Key.Reveal())
		if err != nil {
			return nil, false, fmt.Errorf("EVENT_SIGNING_KEY (event_signing.key): %w", err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if s.Required {
			return nil, false, errNoSigningKey
		}
		return nil, true, nil
	}
	v, err = signing.NewVerifier(keys...)
	return v, !s.Required, err
}

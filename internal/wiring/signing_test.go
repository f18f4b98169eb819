package wiring_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/signing"
)

const (
	keyA = "a:0123456789abcdef0123456789abcdef-a"
	keyB = "b:0123456789abcdef0123456789abcdef-b"
)

func signed(t *testing.T, key string) kafka.Message {
	t.Helper()
	k, err := signing.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message{Key: []byte("user-1"), Value: []byte("x")}
	s.Sign(&m)
	return m
}

func TestSigning(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("ErrNoKey", func(t *testing.T) {
		cfg := config.Default()
		if _, err := wiring.Signer(cfg); err == nil || !strings.Contains(err.Error(), "EVENT_SIGNING_REQUIRED=false") {
			t.Errorf("Signer without a key = %v, want a refusal that says what to set", err)
		}
		if _, err := wiring.ConsumerConfig(cfg, nil, "g", log, nil); err == nil || !strings.Contains(err.Error(), "EVENT_SIGNING_KEY") {
			t.Errorf("ConsumerConfig without a key = %v, want a refusal", err)
		}
		if _, err := wiring.NewRelay(nil, cfg, log, nil); err == nil {
			t.Error("NewRelay without a key: no error")
		}
	})
	t.Run("NotRequired", func(t *testing.T) {
		cfg := config.Default()
		cfg.EventSigning.Required = false
		s, err := wiring.Signer(cfg)
		if s != nil || err != nil {
			t.Errorf("Signer = %v, %v; want none, without error", s, err)
		}
		v, acceptUnsigned, err := wiring.Verifier(cfg)
		if v != nil || !acceptUnsigned || err != nil {
			t.Errorf("Verifier = %v, %v, %v; want none, accepting unsigned records", v, acceptUnsigned, err)
		}
	})
	t.Run("Rotation", func(t *testing.T) {
		cfg := config.Default()
		cfg.EventSigning.Key = config.Secret(keyB)
		cfg.EventSigning.AcceptedKeys = config.Secret(keyA)
		s, err := wiring.Signer(cfg)
		if err != nil || s.KeyID() != "b" {
			t.Fatalf("Signer = %v, %v; want key b", s, err)
		}
		v, acceptUnsigned, err := wiring.Verifier(cfg)
		if err != nil || acceptUnsigned {
			t.Fatalf("Verifier: %v (accepts unsigned: %v)", err, acceptUnsigned)
		}
		for _, key := range []string{keyA, keyB} {
			if err := v.Verify(signed(t, key)); err != nil {
				t.Errorf("a record signed with %s: %v", key[:1], err)
			}
		}
		decode, err := wiring.Decoder(cfg, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode(kafka.Message{Key: []byte("user-1"), Value: []byte("x")}); !consume.IsQuarantined(err) {
			t.Errorf("an unsigned record: %v, want it quarantined", err)
		}
		var q *consume.QuarantineError
		if _, err := decode(signed(t, keyA)); errors.As(err, &q) {
			t.Errorf("a record signed with an accepted key: %v, want it through verification", err)
		}
	})
}

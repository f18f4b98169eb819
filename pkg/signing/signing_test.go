package signing_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/signing"
)

const (
	secretA = "0123456789abcdef0123456789abcdef-test"
	secretB = "fedcba9876543210fedcba9876543210-next"
)

func key(tb testing.TB, s string) signing.Key {
	tb.Helper()
	k, err := signing.ParseKey(s)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// record is a record with every signed header the relay writes but metadata.
func record() kafka.Message {
	return kafka.Message{Key: []byte("user-1"), Value: []byte(`{"x":1}`), Headers: []kafka.Header{
		{Key: kafkawire.HeaderEventID, Value: []byte("0190e0a0-0000-7000-8000-000000000001")},
		{Key: kafkawire.HeaderEventType, Value: []byte("UserCreated")},
		{Key: kafkawire.HeaderStreamVersion, Value: []byte("0")},
		{Key: kafkawire.HeaderGlobalPosition, Value: []byte("7")},
		{Key: kafkawire.HeaderCorrelationID, Value: []byte("c1")},
		{Key: kafkawire.HeaderCausationID, Value: []byte("")},
		{Key: kafkawire.HeaderRecordedAt, Value: []byte("2026-01-02T03:04:05Z")},
		{Key: kafkawire.HeaderContentType, Value: []byte("application/json")},
		{Key: kafkawire.HeaderFingerprint, Value: []byte("0123456789abcdef")},
	}}
}

func header(m kafka.Message, name string) string {
	for _, h := range m.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

// The header is the one the package comment describes: this digest was computed from that
// description with Python's hmac module, not with this package.
func TestSigner_Sign(t *testing.T) {
	s, err := signing.NewSigner(key(t, "k1:"+secretA))
	if err != nil {
		t.Fatal(err)
	}
	m := record()
	s.Sign(&m)
	got := header(m, kafkawire.HeaderSignature)
	want := "hmac-sha256:k1:3aea3f2ca094c5c06cc1622ebb05635001fc684be78f09e31500e5f884f072de"
	if got != want {
		t.Errorf("signature header\n got %s\nwant %s", got, want)
	}
	s.Sign(&m) // again: replaces, does not add
	if n := strings.Count(fmt.Sprint(m.Headers), kafkawire.HeaderSignature); n != 1 {
		t.Errorf("%d signature headers after signing twice, want 1", n)
	}
}

func TestVerifier_Verify(t *testing.T) {
	a, b := key(t, "k1:"+secretA), key(t, "k2:"+secretB)
	signerA, _ := signing.NewSigner(a)
	signerB, _ := signing.NewSigner(b)
	signed := func(s *signing.Signer, change func(m *kafka.Message)) kafka.Message {
		m := record()
		s.Sign(&m)
		if change != nil {
			change(&m)
		}
		return m
	}
	setHeader := func(name, value string) func(m *kafka.Message) {
		return func(m *kafka.Message) {
			for i := range m.Headers {
				if m.Headers[i].Key == name {
					m.Headers[i].Value = []byte(value)
				}
			}
		}
	}
	onlyA, err := signing.NewVerifier(a)
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := signing.NewVerifier(a, b, a) // the same key twice is fine
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    *signing.Verifier
		m    kafka.Message
		want error
	}{
		{"OK", onlyA, signed(signerA, nil), nil},
		{"OKWithAnUnsignedHeaderAdded", onlyA, signed(signerA, func(m *kafka.Message) {
			m.Headers = append(m.Headers, kafka.Header{Key: "traceparent", Value: []byte("00-abc")})
		}), nil},
		{"OKWhileRotating", rotating, signed(signerB, nil), nil},
		{"ErrUnsigned", onlyA, record(), signing.ErrUnsigned},
		{"ErrUnknownKey", onlyA, signed(signerB, nil), signing.ErrUnknownKey},
		{"ValueChanged", onlyA, signed(signerA, func(m *kafka.Message) { m.Value = []byte(`{"x":2}`) }), signing.ErrBadSignature},
		{"KeyChanged", onlyA, signed(signerA, func(m *kafka.Message) { m.Key = []byte("user-2") }), signing.ErrBadSignature},
		{"EventTypeChanged", onlyA, signed(signerA, setHeader(kafkawire.HeaderEventType, "UserDeactivated")), signing.ErrBadSignature},
		{"FingerprintChanged", onlyA, signed(signerA, setHeader(kafkawire.HeaderFingerprint, "fedcba9876543210")), signing.ErrBadSignature},
		{"MetadataAdded", onlyA, signed(signerA, func(m *kafka.Message) {
			m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderMetadata, Value: []byte(`{"a":"b"}`)})
		}), signing.ErrBadSignature},
		{"SignedHeaderTwice", onlyA, signed(signerA, func(m *kafka.Message) {
			m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderContentType, Value: []byte("application/vnd.apache.avro+binary")})
		}), signing.ErrBadSignature},
		{"SignatureTwice", onlyA, signed(signerA, func(m *kafka.Message) {
			m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderSignature, Value: []byte(header(*m, kafkawire.HeaderSignature))})
		}), signing.ErrBadSignature},
		{"DigitsMissing", onlyA, signed(signerA, setHeader(kafkawire.HeaderSignature, "hmac-sha256:k1:")), signing.ErrBadSignature},
		{"OtherAlgorithm", onlyA, signed(signerA, setHeader(kafkawire.HeaderSignature, "ed25519:k1:00")), signing.ErrBadSignature},
		{"EmptySignature", onlyA, signed(signerA, setHeader(kafkawire.HeaderSignature, "")), signing.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Verify(tc.m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	secret := "s3cr3t-" + strings.Repeat("x", 40)
	for _, tc := range []struct {
		name, in string
		want     string // "" means it parses
	}{
		{"OK", "prod-2026.1:" + secret, ""},
		{"NoColon", secret, "want <id>:<secret>"},
		{"BadID", "a b:" + secret, "the id"},
		{"LongID", strings.Repeat("a", 33) + ":" + secret, "the id"},
		{"ShortSecret", "k1:s3cr3t-short", "at least 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := signing.ParseKey(tc.in)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ParseKey: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ParseKey = %v, want an error about %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "s3cr3t"):
				t.Errorf("the error shows the secret: %v", err)
			}
			if err == nil {
				var logged bytes.Buffer
				slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k)
				for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), logged.String()} {
					if strings.Contains(out, "s3cr3t") {
						t.Errorf("printed: %s", out)
					}
				}
			}
		})
	}
	keys, err := signing.ParseKeys(" k1:" + secretA + ", ,k2:" + secretB + " ")
	if err != nil || len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "k2" {
		t.Errorf("ParseKeys = %v, %v", keys, err)
	}
	if _, err := signing.NewVerifier(key(t, "k1:"+secretA), key(t, "k1:"+secretB)); err == nil {
		t.Error("NewVerifier took two different secrets under one id")
	}
	if _, err := signing.NewVerifier(); err == nil {
		t.Error("NewVerifier took no key")
	}
}

func BenchmarkVerifier_Verify(b *testing.B) {
	k := key(b, "k1:"+secretA)
	s, _ := signing.NewSigner(k)
	v, _ := signing.NewVerifier(k)
	m := record()
	m.Value = bytes.Repeat([]byte("x"), 400)
	s.Sign(&m)
	for b.Loop() {
		if err := v.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}

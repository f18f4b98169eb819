package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkawire"
)

// Algorithm is the first part of the signature header's value.
const Algorithm = "hmac-sha256"

// MinSecretBytes is the shortest secret a Key may have.
const MinSecretBytes = 32

// SignedHeaders are the headers the signature covers, in the order they are signed.
var SignedHeaders = []string{
	kafkawire.HeaderEventID,
	kafkawire.HeaderEventType,
	kafkawire.HeaderStreamVersion,
	kafkawire.HeaderGlobalPosition,
	kafkawire.HeaderCorrelationID,
	kafkawire.HeaderCausationID,
	kafkawire.HeaderRecordedAt,
	kafkawire.HeaderContentType,
	kafkawire.HeaderFingerprint,
	kafkawire.HeaderMetadata,
}

// Why a record does not verify. Classify with errors.Is.
var (
	// ErrUnsigned: the record has no signature header.
	ErrUnsigned = errors.New("no signature")
	// ErrUnknownKey: the signature names a key id the verifier does not hold.
	ErrUnknownKey = errors.New("signed with a key that is not accepted")
	// ErrBadSignature: the signature does not match the record, is not written as the
	// package comment says, or a signed header appears twice.
	ErrBadSignature = errors.New("bad signature")
)

// Key is a signing key: the id the signature header names, and the secret. It prints as its
// id only.
type Key struct {
	ID     string
	secret []byte
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// ParseKey reads a key written <id>:<secret>. Its errors never quote the secret.
func ParseKey(s string) (Key, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, errors.New("signing key: want <id>:<secret>")
	}
	if !keyID.MatchString(id) {
		return Key{}, errors.New("signing key: the id (before the colon) must be 1 to 32 letters, digits, dots, dashes or underscores")
	}
	if len(secret) < MinSecretBytes {
		return Key{}, fmt.Errorf("signing key %s: the secret has %d bytes, want at least %d (for example `openssl rand -base64 32`)", id, len(secret), MinSecretBytes)
	}
	return Key{ID: id, secret: []byte(secret)}, nil
}

// ParseKeys reads keys separated by commas (base64 has no comma); blank entries are skipped.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, err := ParseKey(part)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// String returns the key's id and a redacted secret.
func (k Key) String() string { return k.ID + ":[redacted]" }

// GoString returns the same as String, so that %#v does not print the secret.
func (k Key) GoString() string { return "signing.Key(" + k.String() + ")" }

// LogValue logs the key's id only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Signer signs records with one key. It is safe for concurrent use.
type Signer struct {
	key  Key
	macs sync.Pool
}

// NewSigner returns the Signer of k, a key from ParseKey.
func NewSigner(k Key) (*Signer, error) {
	if !keyID.MatchString(k.ID) || len(k.secret) < MinSecretBytes {
		return nil, errors.New("signing: not a key from ParseKey")
	}
	return &Signer{key: k, macs: macPool(k.secret)}, nil
}

// KeyID is the id of the key the Signer signs with.
func (s *Signer) KeyID() string { return s.key.ID }

// Sign adds the signature header to m, replacing any it had. The signed headers must be in
// m already.
func (s *Signer) Sign(m *kafka.Message) {
	m.Headers = slicesDeleteSignature(m.Headers)
	mac := s.macs.Get().(hash.Hash)
	defer s.macs.Put(mac)
	sum := digest(mac, m.Key, m.Value, m.Headers)
	v := make([]byte, 0, len(Algorithm)+len(s.key.ID)+2+hex.EncodedLen(len(sum)))
	v = append(append(append(append(v, Algorithm...), ':'), s.key.ID...), ':')
	v = hex.AppendEncode(v, sum)
	m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderSignature, Value: v})
}

// Verifier checks records against the keys it accepts. It is safe for concurrent use.
type Verifier struct {
	keys map[string]*sync.Pool
}

// NewVerifier returns a Verifier that accepts records signed with any of keys (at least one,
// from ParseKey). The same id twice is allowed only with the same secret.
func NewVerifier(keys ...Key) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("signing: a verifier needs at least one key")
	}
	v := &Verifier{keys: map[string]*sync.Pool{}}
	secrets := map[string][]byte{}
	for _, k := range keys {
		if !keyID.MatchString(k.ID) || len(k.secret) < MinSecretBytes {
			return nil, errors.New("signing: not a key from ParseKey")
		}
		if prev, dup := secrets[k.ID]; dup {
			if !hmac.Equal(prev, k.secret) {
				return nil, fmt.Errorf("signing: two different keys have the id %s", k.ID)
			}
			continue
		}
		secrets[k.ID] = k.secret
		p := macPool(k.secret)
		v.keys[k.ID] = &p
	}
	return v, nil
}

// KeyIDs lists the ids of the keys v accepts, in no particular order.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	return ids
}

// Verify checks m's signature: nil when one of v's keys signed m's key, value and signed
// headers as they are; otherwise an error that wraps ErrUnsigned, ErrUnknownKey or
// ErrBadSignature.
func (v *Verifier) Verify(m kafka.Message) error {
	var sig []byte
	seen := 0
	for _, h := range m.Headers {
		if h.Key == kafkawire.HeaderSignature {
			if sig != nil {
				return fmt.Errorf("%w: two %s headers", ErrBadSignature, kafkawire.HeaderSignature)
			}
			sig = h.Value
			if sig == nil {
				sig = []byte{}
			}
			continue
		}
		for i, name := range SignedHeaders {
			if h.Key == name {
				if seen&(1<<i) != 0 {
					return fmt.Errorf("%w: two %s headers", ErrBadSignature, name)
				}
				seen |= 1 << i
			}
		}
	}
	if sig == nil {
		return ErrUnsigned
	}
	alg, rest, ok1 := strings.Cut(string(sig), ":")
	id, digits, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || alg != Algorithm {
		return fmt.Errorf("%w: want %s:<key id>:<hex>", ErrBadSignature, Algorithm)
	}
	want, err := hex.DecodeString(digits)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: want %d hex digits", ErrBadSignature, 2*sha256.Size)
	}
	p, ok := v.keys[id]
	if !ok {
		return fmt.Errorf("%w: key id %q", ErrUnknownKey, truncate(id))
	}
	mac := p.Get().(hash.Hash)
	defer p.Put(mac)
	if !hmac.Equal(digest(mac, m.Key, m.Value, m.Headers), want) {
		return fmt.Errorf("%w: does not match the record (key %s)", ErrBadSignature, id)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func macPool(secret []byte) sync.Pool {
	return sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}
}

// digest writes the signed content of a record to mac, as the package comment says, and
// returns the sum. With a signed header twice it signs the first (Verify refuses such a
// record before it gets here).
func digest(mac hash.Hash, key, value []byte, headers []kafka.Header) []byte {
	mac.Reset()
	var buf [4]byte
	part := func(b []byte) {
		binary.BigEndian.PutUint32(buf[:], uint32(len(b)))
		mac.Write(buf[:])
		mac.Write(b)
	}
	mac.Write([]byte("annals.record.v1\x00"))
	part(key)
	part(value)
	for _, name := range SignedHeaders {
		i := headerIndex(headers, name)
		if i < 0 {
			mac.Write([]byte{0})
			continue
		}
		mac.Write([]byte{1})
		part(headers[i].Value)
	}
	return mac.Sum(nil)
}

func headerIndex(headers []kafka.Header, name string) int {
	for i, h := range headers {
		if h.Key == name {
			return i
		}
	}
	return -1
}

// slicesDeleteSignature returns headers without signature headers, reusing the array only
// when there is none to remove.
func slicesDeleteSignature(headers []kafka.Header) []kafka.Header {
	if headerIndex(headers, kafkawire.HeaderSignature) < 0 {
		return headers
	}
	out := make([]kafka.Header, 0, len(headers))
	for _, h := range headers {
		if h.Key != kafkawire.HeaderSignature {
			out = append(out, h)
		}
	}
	return out
}

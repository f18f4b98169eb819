package auditlog

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// A Checkpoint is a signed statement, kept outside PostgreSQL, that the chain's entry Seq had
// hash Hash at time At. Whoever holds only the public key can check it; a chain that no
// longer holds that entry with that hash was truncated, rewritten or replaced after At.
type Checkpoint struct {
	Seq   int64     `json:"seq"`
	Hash  Hash      `json:"hash"`
	At    time.Time `json:"at"`
	KeyID string    `json:"key_id"`
	// Sig is the Ed25519 signature of the checkpoint's signed text (base64 in JSON).
	Sig []byte `json:"sig"`
}

// signedText is what a checkpoint's signature covers: a fixed label, then seq, hash, time
// (RFC 3339 in UTC, nanoseconds) and key id, one per line.
func (c Checkpoint) signedText() []byte {
	return fmt.Appendf(nil, "annals-audit-checkpoint-v1\n%d\n%s\n%s\n%s", c.Seq, c.Hash, c.At.UTC().Format(time.RFC3339Nano), c.KeyID)
}

// String names the checkpoint in messages.
func (c Checkpoint) String() string {
	return fmt.Sprintf("checkpoint seq %d hash %s at %s (key %s)", c.Seq, c.Hash, c.At.UTC().Format(time.RFC3339), c.KeyID)
}

// ErrCheckpointSignature classifies a checkpoint whose signature does not verify with the
// public key, or that names another key: it was forged or changed.
var ErrCheckpointSignature = errors.New("checkpoint signature does not verify")

// PublicKey checks checkpoints.
type PublicKey struct {
	key ed25519.PublicKey
	id  string
}

// ID is the key id checkpoints signed with the matching private key carry: the first 16 hex
// digits of SHA-256 over the public key's 32 bytes.
func (k *PublicKey) ID() string { return k.id }

// Check returns nil when c was signed by the matching private key, and an error wrapping
// ErrCheckpointSignature otherwise.
func (k *PublicKey) Check(c Checkpoint) error {
	if c.KeyID != k.id {
		return fmt.Errorf("%w: signed with key %q, not %q", ErrCheckpointSignature, c.KeyID, k.id)
	}
	if !ed25519.Verify(k.key, c.signedText(), c.Sig) {
		return fmt.Errorf("%w (key %s)", ErrCheckpointSignature, k.id)
	}
	return nil
}

// Signer signs checkpoints with an Ed25519 private key.
type Signer struct {
	key ed25519.PrivateKey
	pub *PublicKey
}

// Public is the signer's public key.
func (s *Signer) Public() *PublicKey { return s.pub }

// Sign returns the signed checkpoint of entry seq with hash h at time at (kept in UTC).
func (s *Signer) Sign(seq int64, h Hash, at time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: h, At: at.UTC(), KeyID: s.pub.id}
	c.Sig = ed25519.Sign(s.key, c.signedText())
	return c
}

func publicKey(pub ed25519.PublicKey) *PublicKey {
	sum := sha256.Sum256(pub)
	return &PublicKey{key: pub, id: hex.EncodeToString(sum[:8])}
}

// LoadSigner reads an Ed25519 private key from a PEM file holding a PKCS #8 "PRIVATE KEY"
// block, as `annals audit keygen` and `openssl genpkey -algorithm ed25519` write.
func LoadSigner(path string) (*Signer, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint key %s: a %T, not an Ed25519 key", path, k)
	}
	return &Signer{key: priv, pub: publicKey(priv.Public().(ed25519.PublicKey))}, nil
}

// LoadPublicKey reads an Ed25519 public key from a PEM file holding a PKIX "PUBLIC KEY"
// block, as `annals audit keygen` and `openssl pkey -pubout` write.
func LoadPublicKey(path string) (*PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("checkpoint public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint public key %s: a %T, not an Ed25519 key", path, k)
	}
	return publicKey(pub), nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("checkpoint key %s: no PEM %q block", path, typ)
	}
	return blk.Bytes, nil
}

// GenerateKey writes a new Ed25519 key pair: the private key (PKCS #8 PEM) to priv and the
// public key (PKIX PEM) to pub, both created with mode 0600 and never over an existing file.
// It returns the public key.
func GenerateKey(priv, pub string) (*PublicKey, error) {
	p, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	pd, err := x509.MarshalPKIXPublicKey(p)
	if err != nil {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	if err := writeNew(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})); err != nil {
		return nil, err
	}
	if err := writeNew(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pd})); err != nil {
		return nil, err
	}
	return publicKey(p), nil
}

func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keygen: %s: %w", path, err)
	}
	return nil
}

// AppendCheckpoint appends c to the file path as one line of JSON, creating the file (mode
// 0600) when absent, and syncs it (and its directory when it created it) to disk before it
// returns. It only ever appends.
func AppendCheckpoint(path string, c Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, os.ErrNotExist) {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MalformedCheckpointError is a line of a checkpoint file that is not a checkpoint.
type MalformedCheckpointError struct {
	// Line counts from 1; -1 is the last line (NewestCheckpoint reads no more).
	Line int
	Err  error
}

func (e *MalformedCheckpointError) Error() string {
	return fmt.Sprintf("checkpoint file: %s is not a checkpoint: %v", lineName(e.Line), e.Err)
}

func (e *MalformedCheckpointError) Unwrap() error { return e.Err }

// ReadCheckpoints reads every checkpoint of the file path, in file order: the i-th is on line
// i+1. A line that is not a checkpoint (an empty one too) is a *MalformedCheckpointError; a missing file is an error wrapping
// os.ErrNotExist. It does not check signatures.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	defer f.Close()
	var out []Checkpoint
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		c, err := parseCheckpoint(sc.Bytes())
		if err != nil {
			return nil, &MalformedCheckpointError{Line: n, Err: err}
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("checkpoints: %s: %w", path, err)
	}
	return out, nil
}

func parseCheckpoint(b []byte) (Checkpoint, error) {
	var c Checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	if c.Seq < 0 || c.KeyID == "" || len(c.Sig) == 0 || c.At.IsZero() {
		return c, errors.New("a field is missing or out of range")
	}
	return c, nil
}

// tailSize is how much of the end of a checkpoint file NewestCheckpoint reads: many times a
// line's length.
const tailSize = 64 << 10

// NewestCheckpoint reads the last line of the checkpoint file path, without reading the
// whole file. ok is false when the file is absent or empty; a last line that is not a
// checkpoint is a *MalformedCheckpointError. It does not check the signature, nor that the
// lines before it lead up to it: the auditor trusts no last line alone, but reads every line
// (a copy of an old line appended to the file is a last line too).
func NewestCheckpoint(path string) (c Checkpoint, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("checkpoints: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return c, false, fmt.Errorf("checkpoints: %w", err)
	}
	from := max(st.Size()-tailSize, 0)
	buf := make([]byte, st.Size()-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return c, false, fmt.Errorf("checkpoints: %s: %w", path, err)
	}
	buf = bytes.TrimRight(buf, "\n\r\t ")
	if len(buf) == 0 {
		return c, false, nil
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	c, err = parseCheckpoint(buf)
	if err != nil {
		return c, false, &MalformedCheckpointError{Line: -1, Err: fmt.Errorf("the last line: %w", err)}
	}
	return c, true, nil
}

// lineName names a line of a checkpoint file for messages.
func lineName(n int) string {
	if n < 0 {
		return "the last line"
	}
	return "line " + strconv.Itoa(n)
}

package auditlog_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

func sampleEntry() auditlog.Entry {
	return auditlog.Entry{
		Seq:            7,
		EventID:        uuid.MustParse("0190a4b2-7f3c-7a00-8000-000000000001"),
		Type:           "UserCreated",
		StreamID:       "user-0190a4b2-7f3c-7a00-8000-0000000000aa",
		StreamVersion:  0,
		GlobalPosition: 42,
		SchemaVersion:  1,
		Data:           json.RawMessage(`{"email":"ada@example.com","name":"Ada"}`),
		Metadata:       map[string]string{"ip": "192.0.2.1", "agent": "curl/8"},
		CorrelationID:  "c-1",
		CausationID:    "",
		RecordedAt:     time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC),
		AuditedAt:      time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
		Topic:          "annals.user",
		Partition:      3,
		Offset:         1234,
		PrevHash:       auditlog.Hash{1, 2, 3},
	}
}

// The canonical encoding is exactly what Entry.Canonical documents, written out here by hand.
func TestEntry_Canonical(t *testing.T) {
	e := sampleEntry()
	var want bytes.Buffer
	str := func(s string) { want.Write([]byte{0, 0, 0, byte(len(s))}); want.WriteString(s) }
	num := func(v int64) {
		want.Write([]byte{0, 0, 0, 8})
		for i := 7; i >= 0; i-- {
			want.WriteByte(byte(uint64(v) >> (8 * i)))
		}
	}
	str("annals-audit-v1")
	num(7)
	str(string(e.PrevHash[:]))
	str(string(e.EventID[:]))
	str("UserCreated")
	str("user-0190a4b2-7f3c-7a00-8000-0000000000aa")
	num(0)
	num(42)
	num(1)
	str(`{"email":"ada@example.com","name":"Ada"}`)
	// metadata: length of what follows, the count, then the pairs in key order
	md := []byte{0, 0, 0, 2, 0, 0, 0, 5}
	md = append(md, "agent"...)
	md = append(md, 0, 0, 0, 6)
	md = append(md, "curl/8"...)
	md = append(md, 0, 0, 0, 2)
	md = append(md, "ip"...)
	md = append(md, 0, 0, 0, 9)
	md = append(md, "192.0.2.1"...)
	str(string(md))
	str("c-1")
	str("")
	num(e.RecordedAt.UnixMicro())
	num(e.AuditedAt.UnixMicro())
	str("annals.user")
	num(3)
	num(1234)

	got := e.Canonical(nil)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("canonical encoding:\n got %x\nwant %x", got, want.Bytes())
	}
	if h := e.ComputeHash(); h != sha256.Sum256(want.Bytes()) {
		t.Errorf("ComputeHash is not SHA-256 of the encoding")
	}
}

// Every field of an entry but Hash is covered: changing any one changes the hash.
func TestEntry_HashCoversEveryField(t *testing.T) {
	base := sampleEntry()
	h0 := base.ComputeHash()
	changes := map[string]func(*auditlog.Entry){
		"Seq":            func(e *auditlog.Entry) { e.Seq++ },
		"EventID":        func(e *auditlog.Entry) { e.EventID[15]++ },
		"Type":           func(e *auditlog.Entry) { e.Type = "UserDeactivated" },
		"StreamID":       func(e *auditlog.Entry) { e.StreamID += "x" },
		"StreamVersion":  func(e *auditlog.Entry) { e.StreamVersion++ },
		"GlobalPosition": func(e *auditlog.Entry) { e.GlobalPosition++ },
		"SchemaVersion":  func(e *auditlog.Entry) { e.SchemaVersion++ },
		"Data":           func(e *auditlog.Entry) { e.Data = json.RawMessage(`{"email":"ada@example.com","name":"Eve"}`) },
		"Metadata":       func(e *auditlog.Entry) { e.Metadata = map[string]string{"ip": "192.0.2.1", "agent": "curl/9"} },
		"CorrelationID":  func(e *auditlog.Entry) { e.CorrelationID = "c-2" },
		"CausationID":    func(e *auditlog.Entry) { e.CausationID = "x" },
		"RecordedAt":     func(e *auditlog.Entry) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"AuditedAt":      func(e *auditlog.Entry) { e.AuditedAt = e.AuditedAt.Add(time.Microsecond) },
		"Topic":          func(e *auditlog.Entry) { e.Topic = "annals.order" },
		"Partition":      func(e *auditlog.Entry) { e.Partition++ },
		"Offset":         func(e *auditlog.Entry) { e.Offset++ },
		"PrevHash":       func(e *auditlog.Entry) { e.PrevHash[31] = 1 },
	}
	typ := reflect.TypeFor[auditlog.Entry]()
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; name != "Hash" && changes[name] == nil {
			t.Errorf("no change tried for field %s", name)
		}
	}
	for name, change := range changes {
		e := sampleEntry()
		change(&e)
		if e.ComputeHash() == h0 {
			t.Errorf("changing %s leaves the hash as it was", name)
		}
	}
	// Moving bytes from one field to the next changes the encoding: fields are length-prefixed.
	a, b := sampleEntry(), sampleEntry()
	a.CorrelationID, a.CausationID = "ab", "c"
	b.CorrelationID, b.CausationID = "a", "bc"
	if a.ComputeHash() == b.ComputeHash() {
		t.Error("fields are not separated")
	}
	// Metadata in any insertion order encodes alike.
	c := sampleEntry()
	c.Metadata = map[string]string{"agent": "curl/8", "ip": "192.0.2.1"}
	if c.ComputeHash() != h0 {
		t.Error("metadata order changes the hash")
	}
}

func TestHash_JSON(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	b, err := json.Marshal(auditlog.Hash(h))
	if err != nil || string(b) != `"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var back auditlog.Hash
	if err := json.Unmarshal(b, &back); err != nil || back != auditlog.Hash(h) {
		t.Errorf("unmarshal: %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`"abcd"`), &back); err == nil {
		t.Error("a short hash unmarshals")
	}
}

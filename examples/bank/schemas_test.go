package bank_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/events"
)

func TestCatalog(t *testing.T) {
	cat := bank.Catalog()
	var types []string
	for _, in := range cat.Schemas() {
		if in.Current {
			types = append(types, in.Type)
		}
	}
	if want := slices.Sorted(slices.Values(bank.EventTypes)); !slices.Equal(types, want) {
		t.Errorf("types with a schema = %v, want %v", types, want)
	}
}

// TestCatalog_RoundTrip encodes every event the commands record, as the relay does, and
// decodes it as a consumer does: the payloads and the schemas agree field for field (Encode
// refuses a field the schema lacks and a missing one without default).
func TestCatalog_RoundTrip(t *testing.T) {
	a := opened(t, 700)
	must(t, bank.Deposit(a, 1200))
	must(t, bank.Withdraw(a, 1900))
	must(t, bank.Deposit(a, 700))
	must(t, bank.Close(a, "moving abroad"))
	seen := map[string]bool{}
	for i, e := range a.Pending() {
		seen[e.Type] = true
		env := events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: a.StreamID(), Category: bank.Category,
			Version: int64(i), GlobalPosition: int64(100 + i), Type: e.Type, SchemaVersion: 1, Data: e.Data,
			CorrelationID: "c-1", RecordedAt: time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC),
		}
		value, fp, err := bank.Catalog().Encode(env)
		if err != nil {
			t.Fatalf("encode %s: %v", e.Type, err)
		}
		d, err := bank.Catalog().Decode(value)
		if err != nil {
			t.Fatalf("decode %s: %v", e.Type, err)
		}
		if d.Fingerprint != fp || d.Envelope.EventID != env.EventID || d.Envelope.StreamID != env.StreamID ||
			d.Envelope.Version != env.Version || !d.Envelope.RecordedAt.Equal(env.RecordedAt) {
			t.Errorf("%s: decoded %+v, want %+v", e.Type, d.Envelope, env)
		}
		var got, want map[string]any
		must(t, json.Unmarshal(d.Envelope.Data, &got))
		must(t, json.Unmarshal(e.Data, &want))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: data = %v, want %v", e.Type, got, want)
		}
	}
	for _, typ := range bank.EventTypes {
		if !seen[typ] {
			t.Errorf("no command recorded %s", typ)
		}
	}
}

package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/inmem"
)

func TestExpectedVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    events.ExpectedVersion
		allows  []int64
		refuses []int64
	}{
		{"any", events.Any(), []int64{-1, 0, 7}, nil},
		{"no_stream", events.NoStream(), []int64{-1}, []int64{0, 3}},
		{"-1", events.NoStream(), []int64{-1}, []int64{0}},
		{"stream_exists", events.StreamExists(), []int64{0, 9}, []int64{-1}},
		{"4", events.Exact(4), []int64{4}, []int64{-1, 3, 5}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := events.ParseExpectedVersion(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("parse %q = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			for _, v := range tc.allows {
				if !got.Allows(v) {
					t.Errorf("%v does not allow %d", got, v)
				}
			}
			for _, v := range tc.refuses {
				if got.Allows(v) {
					t.Errorf("%v allows %d", got, v)
				}
			}
			if back, err := events.ParseExpectedVersion(got.String()); err != nil || back != got {
				t.Errorf("round trip of %v: %v, %v", got, back, err)
			}
		})
	}
	for _, bad := range []string{"", "-2", "latest", "1.5"} {
		if _, err := events.ParseExpectedVersion(bad); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("parse %q: %v, want ErrInvalid", bad, err)
		}
	}
	b, _ := json.Marshal(map[string]events.ExpectedVersion{"a": events.Exact(3), "b": events.NoStream()})
	if string(b) != `{"a":3,"b":"no_stream"}` {
		t.Errorf("json = %s", b)
	}
}

func TestValidateStreamID(t *testing.T) {
	for _, ok := range []string{"user-0198c3a0-7f2e-7000-8000-000000000000", "order-1", "a_b-x-y"} {
		if err := events.ValidateStreamID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "user", "-1", "user-", "User-1", "user-a b", "us er-1", "user-\x00"} {
		if err := events.ValidateStreamID(bad); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestAggregate_Record(t *testing.T) {
	def := events.Definition[int]{Category: "n", Apply: func(s *int, e events.Envelope) error {
		if e.Type == "Bad" {
			return errors.New("refused")
		}
		*s++
		return nil
	}}
	repo := &events.Repository[int]{Def: def}
	a := repo.New("1")
	if a.Exists() || a.Version() != -1 || a.StreamID() != "n-1" {
		t.Fatalf("new aggregate: exists %v version %d stream %s", a.Exists(), a.Version(), a.StreamID())
	}
	if err := a.Record("Good", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Record("Bad", nil); err == nil {
		t.Fatal("Record kept an event that Apply refused")
	}
	if a.State() != 1 || a.Version() != 0 || len(a.Pending()) != 1 || a.LoadedVersion() != -1 {
		t.Errorf("state %d version %d pending %d loaded %d; want 1, 0, 1, -1", a.State(), a.Version(), len(a.Pending()), a.LoadedVersion())
	}
}

func TestAggregate_RecordSchemaVersion(t *testing.T) {
	def := events.Definition[int]{Category: "n", SchemaVersions: map[string]int{"Changed": 3},
		Apply: func(s *int, e events.Envelope) error { *s = e.SchemaVersion; return nil }}
	a := (&events.Repository[int]{Def: def}).New("1")
	for _, tc := range []struct {
		typ  string
		want int
	}{{"Created", 1}, {"Changed", 3}} {
		if err := a.Record(tc.typ, nil); err != nil {
			t.Fatal(err)
		}
		if got := a.Pending()[len(a.Pending())-1].SchemaVersion; got != tc.want || a.State() != tc.want {
			t.Errorf("%s recorded with schema version %d (applied %d), want %d", tc.typ, got, a.State(), tc.want)
		}
	}
}

// An event's data is its value as compact JSON, text as it is: no HTML escaping, which would
// make six bytes of every <, > and &.
func TestNewEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		data any
		want string
	}{
		{"Struct", struct {
			Name  string `json:"name"`
			Cents int64  `json:"cents"`
		}{"Fish & <Chips>", 1250}, `{"name":"Fish & <Chips>","cents":1250}`},
		{"Map", map[string]any{"b": []string{"x>y"}, "a": nil}, `{"a":null,"b":["x>y"]}`},
		{"RawMessage", json.RawMessage(`{ "html": "<p>&amp;</p>" }`), `{"html":"<p>&amp;</p>"}`},
		{"Unicode", map[string]string{"s": "é\u2028\"\\\x01"}, `{"s":"é\u2028\"\\\u0001"}`},
		{"Nil", nil, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := events.NewEvent("Happened", tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != "Happened" || string(e.Data) != tc.want {
				t.Errorf("NewEvent = %s %s, want Happened %s", e.Type, e.Data, tc.want)
			}
		})
	}
	if _, err := events.NewEvent("Bad", map[string]any{"f": func() {}}); err == nil {
		t.Error("NewEvent marshalled a function")
	}
}

// A snapshot keeps the state's text as it is, as events do.
func TestRepository_SnapshotText(t *testing.T) {
	def := events.Definition[[]string]{Category: "note", StateSchemaVersion: 1, Apply: func(s *[]string, e events.Envelope) error {
		var text string
		if err := json.Unmarshal(e.Data, &text); err != nil {
			return err
		}
		*s = append(*s, text)
		return nil
	}}
	repo := &events.Repository[[]string]{Store: inmem.New(inmem.Options{}), Def: def, SnapshotEvery: 1}
	a := repo.New("1")
	if err := a.Record("Written", "<b>Fish & Chips</b>"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Save(t.Context(), a, events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, ok, err := repo.Store.LatestSnapshot(t.Context(), "note-1", 1, 0)
	if err != nil || !ok {
		t.Fatalf("latest snapshot: %v, %v", ok, err)
	}
	if got, want := string(snap.State), `["<b>Fish & Chips</b>"]`; got != want {
		t.Errorf("snapshot state %s, want %s", got, want)
	}
}

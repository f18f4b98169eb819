package eventstest

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// testAppend: an append records its events with everything the envelope says, and reads give
// the caller copies.
func testAppend(t *testing.T, s events.Store) {
	ctx := t.Context()
	given := uuid.New()
	data := json.RawMessage(`{"b": 1,  "a": [1, 2]}`) // kept byte for byte, layout included
	meta := map[string]string{"actor": "alice", "ip": "10.0.0.1"}
	in := []events.Event{
		{Type: "UserCreated", Data: data, Metadata: meta},
		{ID: given, Type: "UserRenamed", SchemaVersion: 2, Data: json.RawMessage(`"x"`)},
		{Type: "UserRenamed", Data: json.RawMessage(`null`)},
	}
	res, err := s.Append(ctx, "user-1", events.NoStream(), in, events.AppendOptions{CorrelationID: "corr-1", CausationID: "cmd-1"})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	got := readStream(t, s, "user-1")

	t.Run("Result", func(t *testing.T) {
		if res.StreamID != "user-1" || res.FirstVersion != 0 || res.LastVersion != 2 {
			t.Errorf("result = %+v, want user-1 at versions 0..2", res)
		}
		if len(res.EventIDs) != 3 || res.EventIDs[1] != given {
			t.Fatalf("event ids %v, want 3 with %s second (as given)", res.EventIDs, given)
		}
		for _, i := range []int{0, 2} {
			if res.EventIDs[i].Version() != 7 {
				t.Errorf("generated event id %s is not a UUIDv7", res.EventIDs[i])
			}
		}
		if res.EventIDs[0] == res.EventIDs[2] {
			t.Errorf("two events got the id %s", res.EventIDs[0])
		}
		if res.FirstPosition < 1 || res.LastPosition <= res.FirstPosition {
			t.Errorf("positions %d..%d, want increasing from at least 1", res.FirstPosition, res.LastPosition)
		}
		if res.RecordedAt.IsZero() || res.RecordedAt.Location() != time.UTC {
			t.Errorf("recorded at %v, want a UTC time", res.RecordedAt)
		}
	})

	t.Run("Envelopes", func(t *testing.T) {
		if len(got) != 3 {
			t.Fatalf("read %d events, want 3", len(got))
		}
		latest := got[0].RecordedAt
		for i, e := range got {
			if e.EventID != res.EventIDs[i] || e.StreamID != "user-1" || e.Category != "user" || e.Version != int64(i) ||
				e.Type != in[i].Type || e.CorrelationID != "corr-1" || e.CausationID != "cmd-1" {
				t.Errorf("event %d = %+v", i, e)
			}
			if want := max(in[i].SchemaVersion, 1); e.SchemaVersion != want {
				t.Errorf("event %d: schema version %d, want %d", i, e.SchemaVersion, want)
			}
			if string(e.Data) != string(in[i].Data) {
				t.Errorf("event %d: data %s, want %s byte for byte", i, e.Data, in[i].Data)
			}
			if e.Metadata == nil || len(in[i].Metadata) > 0 && !maps.Equal(e.Metadata, in[i].Metadata) || len(in[i].Metadata) == 0 && len(e.Metadata) > 0 {
				t.Errorf("event %d: metadata %#v, want %v (an empty map for none)", i, e.Metadata, in[i].Metadata)
			}
			if e.RecordedAt.Location() != time.UTC || e.RecordedAt.After(res.RecordedAt) {
				t.Errorf("event %d recorded at %v, want UTC and not after the result's %v", i, e.RecordedAt, res.RecordedAt)
			}
			if e.RecordedAt.After(latest) {
				latest = e.RecordedAt
			}
			if i > 0 && e.GlobalPosition <= got[i-1].GlobalPosition {
				t.Errorf("event %d at position %d after %d", i, e.GlobalPosition, got[i-1].GlobalPosition)
			}
		}
		if got[0].GlobalPosition != res.FirstPosition || got[2].GlobalPosition != res.LastPosition {
			t.Errorf("positions %d..%d, the result says %d..%d", got[0].GlobalPosition, got[2].GlobalPosition, res.FirstPosition, res.LastPosition)
		}
		if !latest.Equal(res.RecordedAt) {
			t.Errorf("the result's recording time %v is not its last event's %v", res.RecordedAt, latest)
		}
	})

	t.Run("Continues", func(t *testing.T) {
		next := mustAppend(t, s, "user-1", events.Exact(2), batch(t, 2, "UserRenamed")...)
		if next.FirstVersion != 3 || next.LastVersion != 4 || next.FirstPosition <= res.LastPosition {
			t.Errorf("second append = %+v, want versions 3..4 after position %d", next, res.LastPosition)
		}
		if got := versions(readStream(t, s, "user-1")); !slices.Equal(got, span(0, 4)) {
			t.Errorf("versions %v, want 0..4", got)
		}
	})

	t.Run("CallersCopies", func(t *testing.T) {
		// Changing what was appended, or what was read, changes nothing stored.
		data[0] = 'X'
		meta["actor"] = "mallory"
		got[0].Data[0] = 'Y'
		got[0].Metadata["actor"] = "eve"
		again := readStream(t, s, "user-1")
		if string(again[0].Data) != `{"b": 1,  "a": [1, 2]}` || again[0].Metadata["actor"] != "alice" {
			t.Errorf("stored event changed with the caller's slices and maps: %s %v", again[0].Data, again[0].Metadata)
		}
	})
}

// testExpectedVersion: each expected-version mode, held and broken. A broken one is a
// *VersionConflictError naming the expectation and the actual version, and changes nothing.
func testExpectedVersion(t *testing.T, s events.Store) {
	ctx := t.Context()
	mustAppend(t, s, "order-1", events.NoStream(), batch(t, 3, "OrderCreated")...)
	for _, tc := range []struct {
		name     string
		stream   string
		expected events.ExpectedVersion
		actual   int64 // the stream's version before the append
		conflict bool
	}{
		{"AnyOnExisting", "order-1", events.Any(), 2, false},
		{"ExactMatches", "order-1", events.Exact(4), 4, false},
		{"StreamExistsOnExisting", "order-1", events.StreamExists(), 6, false},
		{"AnyOnMissing", "order-2", events.Any(), -1, false},
		{"NoStreamOnMissing", "order-3", events.NoStream(), -1, false},
		{"ExactMinusOneOnMissing", "order-4", events.Exact(-1), -1, false},
		{"ErrVersionConflict/NoStreamOnExisting", "order-1", events.NoStream(), 8, true},
		{"ErrVersionConflict/ExactStale", "order-1", events.Exact(2), 8, true},
		{"ErrVersionConflict/ExactAhead", "order-1", events.Exact(9), 8, true},
		{"ErrVersionConflict/ExactOnMissing", "order-missing", events.Exact(0), -1, true},
		{"ErrVersionConflict/StreamExistsOnMissing", "order-missing", events.StreamExists(), -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := contents(t, s)
			res, err := s.Append(ctx, tc.stream, tc.expected, batch(t, 2, "ItemAdded"), events.AppendOptions{})
			if !tc.conflict {
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				if res.FirstVersion != tc.actual+1 || res.LastVersion != tc.actual+2 {
					t.Errorf("result %+v, want versions %d..%d", res, tc.actual+1, tc.actual+2)
				}
				return
			}
			var conflict *events.VersionConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("append = %v, want a *VersionConflictError", err)
			}
			if conflict.StreamID != tc.stream || conflict.Expected != tc.expected || conflict.Actual != tc.actual {
				t.Errorf("conflict = %+v, want %s expecting %s at actual %d", conflict, tc.stream, tc.expected, tc.actual)
			}
			unchanged(t, s, before, "a refused append")
		})
	}
	notFound(t, s, "order-missing")
}

// testEventIDs: event ids are unique across the store, so an append whose events carry ids
// already recorded (a retried command) is refused and nothing is recorded twice.
func testEventIDs(t *testing.T, s events.Store) {
	ctx := t.Context()
	first := batch(t, 2, "OrderCreated")
	for i := range first {
		first[i].ID = uuid.New()
	}
	res := mustAppend(t, s, "order-1", events.NoStream(), first...)
	if !slices.Equal(res.EventIDs, []uuid.UUID{first[0].ID, first[1].ID}) {
		t.Fatalf("event ids %v, want the given %s and %s", res.EventIDs, first[0].ID, first[1].ID)
	}

	t.Run("RetryWithExpectedVersion", func(t *testing.T) {
		// Which of its two faults refuses the retry is the store's choice (PostgreSQL's
		// depends on the mode), but refused it is.
		before := contents(t, s)
		for _, expected := range []events.ExpectedVersion{events.NoStream(), events.Exact(-1), events.Exact(0), events.Exact(1)} {
			_, err := s.Append(ctx, "order-1", expected, first, events.AppendOptions{})
			var conflict *events.VersionConflictError
			if !errors.Is(err, events.ErrInvalid) && !(errors.As(err, &conflict) && conflict.Actual == 1) {
				t.Errorf("append retried expecting %s = %v, want ErrInvalid or a version conflict at actual 1", expected, err)
			}
		}
		unchanged(t, s, before, "a retried append")
	})
	t.Run("RetryWithAny", func(t *testing.T) {
		before := contents(t, s)
		if _, err := s.Append(ctx, "order-1", events.Any(), first, events.AppendOptions{}); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("retried append = %v, want ErrInvalid (the ids are recorded)", err)
		}
		unchanged(t, s, before, "a retried append")
	})
	t.Run("RecordedIDLastInBatch", func(t *testing.T) {
		// The third event repeats a recorded id: neither of the two before it may remain.
		evs := batch(t, 3, "ItemAdded")
		evs[2].ID = first[0].ID
		before := contents(t, s)
		for _, stream := range []string{"order-1", "order-new"} {
			if _, err := s.Append(ctx, stream, events.Any(), evs, events.AppendOptions{}); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("append to %s = %v, want ErrInvalid", stream, err)
			}
		}
		unchanged(t, s, before, "an append with a recorded id")
		notFound(t, s, "order-new")
	})
	t.Run("RepeatedInBatch", func(t *testing.T) {
		evs := batch(t, 2, "ItemAdded")
		id := uuid.New()
		evs[0].ID, evs[1].ID = id, id
		before := contents(t, s)
		if _, err := s.Append(ctx, "order-new", events.NoStream(), evs, events.AppendOptions{}); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("append = %v, want ErrInvalid", err)
		}
		unchanged(t, s, before, "an append with one id twice")
		notFound(t, s, "order-new")
	})
}

package eventstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// event returns an event of the given type with data marshalled from v.
func event(tb testing.TB, typ string, v any) events.Event {
	tb.Helper()
	e, err := events.NewEvent(typ, v)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// batch returns n events of the given type, numbered in their data.
func batch(tb testing.TB, n int, typ string) []events.Event {
	tb.Helper()
	out := make([]events.Event, n)
	for i := range out {
		out[i] = event(tb, typ, map[string]int{"n": i})
	}
	return out
}

// mustAppend appends and fails the test on an error.
func mustAppend(tb testing.TB, s events.Store, streamID string, expected events.ExpectedVersion, evs ...events.Event) events.AppendResult {
	tb.Helper()
	res, err := s.Append(tb.Context(), streamID, expected, evs, events.AppendOptions{})
	if err != nil {
		tb.Fatalf("append %d events to %s (expected %s): %v", len(evs), streamID, expected, err)
	}
	return res
}

// readStream reads the whole stream.
func readStream(tb testing.TB, s events.Store, streamID string) []events.Envelope {
	tb.Helper()
	got, err := s.ReadStream(tb.Context(), streamID, 0, -1, 10_000)
	if err != nil {
		tb.Fatalf("read %s: %v", streamID, err)
	}
	return got
}

// readAll reads every event of the store, a page at a time.
func readAll(tb testing.TB, s events.Store) []events.Envelope {
	tb.Helper()
	var out []events.Envelope
	q := events.AllQuery{Limit: 100}
	for {
		page, err := s.ReadAll(tb.Context(), q)
		if err != nil {
			tb.Fatalf("read all after %d: %v", q.After, err)
		}
		out = append(out, page...)
		if len(page) < q.Limit {
			return out
		}
		q.After = page[len(page)-1].GlobalPosition
	}
}

// contents describes everything the store holds that an append can change: every event
// with its place, and the counts of Stats.
func contents(tb testing.TB, s events.Store) string {
	tb.Helper()
	var b strings.Builder
	for _, e := range readAll(tb, s) {
		fmt.Fprintf(&b, "%d %s %s@%d %s\n", e.GlobalPosition, e.EventID, e.StreamID, e.Version, e.Type)
	}
	st, err := s.Stats(tb.Context(), 0)
	if err != nil {
		tb.Fatalf("stats: %v", err)
	}
	fmt.Fprintf(&b, "events %d, streams %d, by type %v", st.TotalEvents, st.TotalStreams, st.EventsByType)
	return b.String()
}

// unchanged fails the test when the store's contents differ from before.
func unchanged(tb testing.TB, s events.Store, before, what string) {
	tb.Helper()
	if after := contents(tb, s); after != before {
		tb.Errorf("%s changed the store:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}

// notFound fails the test unless StreamInfo says the stream does not exist.
func notFound(tb testing.TB, s events.Store, streamID string) {
	tb.Helper()
	if info, err := s.StreamInfo(tb.Context(), streamID); !errors.Is(err, events.ErrNotFound) {
		tb.Errorf("stream %s: %+v, %v; want ErrNotFound", streamID, info, err)
	}
}

// sameEnvelope reports how two envelopes of the same event differ; "" when they do not.
func sameEnvelope(a, b events.Envelope) string {
	switch {
	case a.EventID != b.EventID, a.StreamID != b.StreamID, a.Category != b.Category, a.Version != b.Version,
		a.GlobalPosition != b.GlobalPosition, a.Type != b.Type, a.SchemaVersion != b.SchemaVersion,
		a.CorrelationID != b.CorrelationID, a.CausationID != b.CausationID:
		return fmt.Sprintf("%+v\nand\n%+v", a, b)
	case !bytes.Equal(a.Data, b.Data):
		return fmt.Sprintf("data %s and %s", a.Data, b.Data)
	case !maps.Equal(a.Metadata, b.Metadata):
		return fmt.Sprintf("metadata %v and %v", a.Metadata, b.Metadata)
	case !a.RecordedAt.Equal(b.RecordedAt):
		return fmt.Sprintf("recorded at %s and %s", a.RecordedAt, b.RecordedAt)
	}
	return ""
}

// sameJSON reports whether a and b are the same JSON value, whatever their layout.
func sameJSON(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// ids returns the event ids of envelopes.
func ids(envs []events.Envelope) []uuid.UUID {
	out := make([]uuid.UUID, len(envs))
	for i, e := range envs {
		out[i] = e.EventID
	}
	return out
}

// versions returns the versions of envelopes.
func versions(envs []events.Envelope) []int64 {
	out := make([]int64, len(envs))
	for i, e := range envs {
		out[i] = e.Version
	}
	return out
}

// span returns the versions from..to.
func span(from, to int64) []int64 {
	var out []int64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

// versionAt is what VersionAt must answer for a stream whose events are envs: the version of
// the last event recorded at or before t; -1 if none.
func versionAt(envs []events.Envelope, t time.Time) int64 {
	v := int64(-1)
	for _, e := range envs {
		if !e.RecordedAt.After(t) {
			v = max(v, e.Version)
		}
	}
	return v
}

// filter returns the envelopes that keep accepts, in their order.
func filter(envs []events.Envelope, keep func(events.Envelope) bool) []events.Envelope {
	return slices.DeleteFunc(slices.Clone(envs), func(e events.Envelope) bool { return !keep(e) })
}

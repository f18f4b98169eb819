package eventstest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// testInvalidInput: malformed requests are ErrInvalid and change nothing, wherever in the
// append the bad part is.
func testInvalidInput(t *testing.T, s events.Store) {
	ctx := t.Context()
	mustAppend(t, s, "user-1", events.NoStream(), event(t, "UserCreated", nil))
	good := func() events.Event { return event(t, "UserRenamed", map[string]string{"name": "x"}) }
	with := func(change func(e *events.Event)) []events.Event {
		evs := []events.Event{good(), good(), good()}
		change(&evs[2]) // the last: the good ones before it must not remain
		return evs
	}
	both := []string{"user-1", "user-9"} // an existing stream and a new one
	for _, tc := range []struct {
		name    string
		streams []string
		evs     []events.Event
		opts    events.AppendOptions
	}{
		{"EmptyStreamID", []string{""}, []events.Event{good()}, events.AppendOptions{}},
		{"NoCategory", []string{"user"}, []events.Event{good()}, events.AppendOptions{}},
		{"UpperCaseCategory", []string{"User-1"}, []events.Event{good()}, events.AppendOptions{}},
		{"EmptyID", []string{"user-"}, []events.Event{good()}, events.AppendOptions{}},
		{"SpaceInID", []string{"user-a b"}, []events.Event{good()}, events.AppendOptions{}},
		{"LongStreamID", []string{"user-" + strings.Repeat("x", 200)}, []events.Event{good()}, events.AppendOptions{}},
		{"StreamIDNotUTF8", []string{"user-\xff"}, []events.Event{good()}, events.AppendOptions{}},
		{"NilEvents", both, nil, events.AppendOptions{}},
		{"NoEvents", both, []events.Event{}, events.AppendOptions{}},
		{"EmptyType", both, with(func(e *events.Event) { e.Type = "" }), events.AppendOptions{}},
		{"LongType", both, with(func(e *events.Event) { e.Type = strings.Repeat("T", 201) }), events.AppendOptions{}},
		{"TypeWithNUL", both, with(func(e *events.Event) { e.Type = "User\x00Renamed" }), events.AppendOptions{}},
		{"TypeNotUTF8", both, with(func(e *events.Event) { e.Type = "User\xffRenamed" }), events.AppendOptions{}},
		{"DataNotJSON", both, with(func(e *events.Event) { e.Data = []byte(`{"name":`) }), events.AppendOptions{}},
		{"DataNil", both, with(func(e *events.Event) { e.Data = nil }), events.AppendOptions{}},
		{"DataEmpty", both, with(func(e *events.Event) { e.Data = []byte{} }), events.AppendOptions{}},
		{"DataNotUTF8", both, with(func(e *events.Event) { e.Data = []byte("\"\xff\"") }), events.AppendOptions{}},
		{"CorrelationIDWithNUL", both, []events.Event{good()}, events.AppendOptions{CorrelationID: "a\x00b"}},
		{"CausationIDNotUTF8", both, []events.Event{good()}, events.AppendOptions{CausationID: "a\xffb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := contents(t, s)
			for _, stream := range tc.streams {
				for _, expected := range []events.ExpectedVersion{events.Any(), events.Exact(0), events.NoStream()} {
					if _, err := s.Append(ctx, stream, expected, tc.evs, tc.opts); !errors.Is(err, events.ErrInvalid) {
						t.Errorf("append to %q expecting %s = %v, want ErrInvalid", stream, expected, err)
					}
				}
			}
			unchanged(t, s, before, "an invalid append")
		})
	}
	notFound(t, s, "user-9")
	if res := mustAppend(t, s, "user-1", events.Exact(0), good()); res.FirstVersion != 1 {
		t.Errorf("the next good append landed at version %d, want 1", res.FirstVersion)
	}

	t.Run("ReadLimit", func(t *testing.T) {
		for _, limit := range []int{0, -1} {
			if _, err := s.ReadStream(ctx, "user-1", 0, -1, limit); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("read stream with limit %d: %v, want ErrInvalid", limit, err)
			}
			if _, err := s.ReadAll(ctx, events.AllQuery{Limit: limit}); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("read all with limit %d: %v, want ErrInvalid", limit, err)
			}
		}
	})
	t.Run("SnapshotNotJSON", func(t *testing.T) {
		err := s.SaveSnapshot(ctx, events.Snapshot{StreamID: "user-1", Version: 1, StateSchemaVersion: 1, State: []byte(`{"a":`)})
		if err == nil {
			t.Error("a snapshot whose state is not JSON was saved")
		}
		if snap, ok, err := s.LatestSnapshot(ctx, "user-1", 1, 1); ok || err != nil {
			t.Errorf("latest snapshot: %+v, %v, %v; want none", snap, ok, err)
		}
	})
}

// testCancelledContext: every method fails with the context's error, and a cancelled append
// changes nothing.
func testCancelledContext(t *testing.T, s events.Store) {
	mustAppend(t, s, "user-1", events.NoStream(), event(t, "UserCreated", nil))
	before := contents(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Append": func() error {
			_, err := s.Append(ctx, "user-1", events.Any(), []events.Event{event(t, "UserRenamed", nil)}, events.AppendOptions{})
			return err
		},
		"ReadStream": func() error { _, err := s.ReadStream(ctx, "user-1", 0, -1, 10); return err },
		"ReadAll":    func() error { _, err := s.ReadAll(ctx, events.AllQuery{Limit: 10}); return err },
		"Head":       func() error { _, err := s.Head(ctx); return err },
		"StreamInfo": func() error { _, err := s.StreamInfo(ctx, "user-1"); return err },
		"Stats":      func() error { _, err := s.Stats(ctx, 10); return err },
		"VersionAt":  func() error { _, err := s.VersionAt(ctx, "user-1", time.Now()); return err },
		"SaveSnapshot": func() error {
			return s.SaveSnapshot(ctx, events.Snapshot{StreamID: "user-1", Version: 0, StateSchemaVersion: 1, State: []byte(`{}`)})
		},
		"LatestSnapshot": func() error { _, _, err := s.LatestSnapshot(ctx, "user-1", 1, 0); return err },
	}
	if p, ok := s.(Pruner); ok {
		calls["PruneSnapshots"] = func() error { _, err := p.PruneSnapshots(ctx, 0); return err }
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	unchanged(t, s, before, "an append with a cancelled context")
	if snap, ok, err := s.LatestSnapshot(t.Context(), "user-1", 1, 0); ok || err != nil {
		t.Errorf("latest snapshot: %+v, %v, %v; want none", snap, ok, err)
	}
}

// TestMaxEventsPerStream runs the contract of a store that refuses to take a stream past max
// events (the PostgreSQL store's MaxEventsPerStream, MAX_EVENTS_PER_AGGREGATE): such an
// append is a *events.StreamFullError (errors.Is ErrStreamFull) and changes nothing, but an
// expected version that does not hold is still a version conflict. newStore returns a fresh,
// empty store holding at most max events per stream.
func TestMaxEventsPerStream(t *testing.T, newStore func(t *testing.T, max int) events.Store) {
	t.Helper()
	const limit = 5
	s := newStore(t, limit)
	ctx := t.Context()
	mustAppend(t, s, "user-full", events.NoStream(), batch(t, 3, "X")...)
	full := func(t *testing.T, err error, stream string, version int64, appending int) {
		t.Helper()
		var sf *events.StreamFullError
		if !errors.As(err, &sf) || !errors.Is(err, events.ErrStreamFull) {
			t.Fatalf("append = %v, want a *StreamFullError", err)
		}
		if sf.StreamID != stream || sf.Version != version || sf.Appending != appending || sf.Max != limit {
			t.Errorf("stream full = %+v, want %s at version %d, appending %d, max %d", sf, stream, version, appending, limit)
		}
	}

	t.Run("PastTheLimit", func(t *testing.T) {
		before := contents(t, s)
		for _, expected := range []events.ExpectedVersion{events.Exact(2), events.Any(), events.StreamExists()} {
			_, err := s.Append(ctx, "user-full", expected, batch(t, 3, "X"), events.AppendOptions{})
			full(t, err, "user-full", 2, 3)
		}
		_, err := s.Append(ctx, "user-new", events.NoStream(), batch(t, limit+1, "X"), events.AppendOptions{})
		full(t, err, "user-new", -1, limit+1)
		unchanged(t, s, before, "an append past the limit")
		notFound(t, s, "user-new")
	})
	t.Run("ConflictFirst", func(t *testing.T) {
		_, err := s.Append(ctx, "user-full", events.NoStream(), batch(t, 3, "X"), events.AppendOptions{})
		var conflict *events.VersionConflictError
		if !errors.As(err, &conflict) || conflict.Actual != 2 {
			t.Errorf("append = %v, want a version conflict at actual 2", err)
		}
	})
	t.Run("UpToTheLimit", func(t *testing.T) {
		if res := mustAppend(t, s, "user-full", events.Exact(2), batch(t, 2, "X")...); res.LastVersion != limit-1 {
			t.Errorf("result %+v, want the stream at version %d", res, limit-1)
		}
		mustAppend(t, s, "user-new", events.NoStream(), batch(t, limit, "X")...)
		_, err := s.Append(ctx, "user-full", events.Any(), batch(t, 1, "X"), events.AppendOptions{})
		full(t, err, "user-full", limit-1, 1)
	})
}

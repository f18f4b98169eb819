package eventstest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
)

// TestMaxEventBytes runs the contract of a store that refuses events larger than max bytes
// (by events.Event.Size, data and metadata: the stores' MaxEventBytes option,
// MAX_EVENT_BYTES): an append with such an event is a *events.TooLargeError naming the first
// of them, which is ErrTooLarge and ErrInvalid, and changes nothing; an event of exactly max
// bytes is appended, its data kept byte for byte. newStore returns a fresh, empty store that
// takes events of at most max bytes.
func TestMaxEventBytes(t *testing.T, newStore func(t *testing.T, max int) events.Store) {
	t.Helper()
	const limit = 4 << 10
	s := newStore(t, limit)
	ctx := t.Context()
	// sized is an event of n bytes by Size: its metadata, and a JSON string of text and
	// markup as data, which must not grow on the way in.
	sized := func(n int, meta map[string]string) events.Event {
		e := events.Event{Type: "Sized", Metadata: meta}
		markup := strings.Repeat("<a href='?a=1&b=2'>fish & chips</a>", n/30+1)
		e.Data = []byte(`"é` + markup[:n-e.Size()-4] + `"`)
		return e
	}
	small := func() events.Event { return event(t, "Noted", map[string]string{"text": "x"}) }
	mustAppend(t, s, "note-1", events.NoStream(), small())

	t.Run("AtTheLimit", func(t *testing.T) {
		for _, e := range []events.Event{sized(limit, nil), sized(limit, map[string]string{"who": "alice"})} {
			res := mustAppend(t, s, "note-1", events.Any(), small(), e)
			got := readStream(t, s, "note-1")
			if last := got[len(got)-1]; last.Version != res.LastVersion || !bytes.Equal(last.Data, e.Data) {
				t.Errorf("the event of %d bytes read back as version %d with %d bytes of data, want version %d with its %d bytes as appended",
					limit, last.Version, len(last.Data), res.LastVersion, len(e.Data))
			}
		}
	})

	t.Run("OverTheLimit", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			big  events.Event
		}{
			{"Data", sized(limit+1, nil)},
			{"Metadata", sized(limit+1, map[string]string{"who": "alice"})},
			{"FarOver", sized(4*limit, nil)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := contents(t, s)
				version := readStream(t, s, "note-1")
				for _, c := range []struct {
					stream   string
					expected events.ExpectedVersion
				}{
					{"note-1", events.Any()}, {"note-1", events.StreamExists()},
					{"note-1", events.Exact(version[len(version)-1].Version)}, {"note-2", events.NoStream()},
				} {
					_, err := s.Append(ctx, c.stream, c.expected, []events.Event{small(), small(), tc.big, tc.big}, events.AppendOptions{})
					var tl *events.TooLargeError
					if !errors.As(err, &tl) || !errors.Is(err, events.ErrTooLarge) || !errors.Is(err, events.ErrInvalid) {
						t.Fatalf("append to %s expecting %s = %v, want a *TooLargeError", c.stream, c.expected, err)
					}
					want := events.TooLargeError{StreamID: c.stream, Index: 2, Type: "Sized", Size: tc.big.Size(), Max: limit}
					if *tl != want {
						t.Errorf("too large = %+v, want %+v", *tl, want)
					}
				}
				unchanged(t, s, before, "an append of an event over the limit")
				notFound(t, s, "note-2")
			})
		}
	})
}

package eventstest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// testReadStream: a stream reads in version order between from and to, a page of at most
// limit at a time; a stream that does not exist reads as empty.
func testReadStream(t *testing.T, s events.Store) {
	ctx := t.Context()
	for i := range 25 {
		mustAppend(t, s, "order-r", events.Any(), event(t, "ItemAdded", map[string]int{"i": i}))
		if i%10 == 0 {
			mustAppend(t, s, "order-other", events.Any(), event(t, "ItemAdded", nil))
		}
	}
	for _, tc := range []struct {
		from, to int64
		limit    int
		want     []int64
	}{
		{0, -1, 100, span(0, 24)},
		{0, 100, 100, span(0, 24)},
		{5, 9, 100, span(5, 9)},
		{5, 9, 3, span(5, 7)},
		{5, -1, 3, span(5, 7)},
		{-3, 2, 100, span(0, 2)},
		{24, -1, 10, span(24, 24)},
		{7, 7, 10, span(7, 7)},
		{25, -1, 10, nil},
		{9, 5, 10, nil},
	} {
		t.Run(fmt.Sprintf("From%dTo%dLimit%d", tc.from, tc.to, tc.limit), func(t *testing.T) {
			got, err := s.ReadStream(ctx, "order-r", tc.from, tc.to, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(versions(got), tc.want) {
				t.Errorf("versions %v, want %v", versions(got), tc.want)
			}
			for _, e := range got {
				if e.StreamID != "order-r" {
					t.Errorf("read an event of %s", e.StreamID)
				}
			}
		})
	}
	t.Run("Pages", func(t *testing.T) {
		var got []int64
		for from := int64(0); ; {
			page, err := s.ReadStream(ctx, "order-r", from, 22, 10)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, versions(page)...)
			if len(page) < 10 {
				break
			}
			from = page[len(page)-1].Version + 1
		}
		if !slices.Equal(got, span(0, 22)) {
			t.Errorf("read versions %v, want 0..22", got)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		got, err := s.ReadStream(ctx, "order-none", 0, -1, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("missing stream: %v, %v; want nothing and no error", got, err)
		}
	})
}

// testReadAll: every stream reads in global-position order, paged with After and Limit and
// filtered by recording time (Since inclusive, Until exclusive) and type.
func testReadAll(t *testing.T, s events.Store) {
	ctx := t.Context()
	if got, err := s.ReadAll(ctx, events.AllQuery{Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("an empty store reads %v, %v; want nothing", got, err)
	}
	for i := range 12 {
		typ := "ItemAdded"
		if i%4 == 0 {
			typ = "ItemRemoved"
		}
		mustAppend(t, s, "order-a", events.Any(), event(t, typ, map[string]int{"i": i}))
		if i%3 == 0 {
			mustAppend(t, s, "user-b", events.Any(), batch(t, 2, "UserCreated")...)
		}
	}
	all := readAll(t, s)
	byID := map[string]events.Envelope{}
	for _, stream := range []string{"order-a", "user-b"} {
		for _, e := range readStream(t, s, stream) {
			byID[e.EventID.String()] = e
		}
	}

	t.Run("Order", func(t *testing.T) {
		if len(all) != 20 {
			t.Fatalf("read %d events, want 20", len(all))
		}
		for i, e := range all {
			if e.GlobalPosition < 1 || i > 0 && e.GlobalPosition <= all[i-1].GlobalPosition {
				t.Fatalf("event %d at position %d, after %d", i, e.GlobalPosition, all[max(i-1, 0)].GlobalPosition)
			}
			if diff := sameEnvelope(e, byID[e.EventID.String()]); diff != "" {
				t.Errorf("read all and read stream differ: %s", diff)
			}
		}
	})
	t.Run("Pages", func(t *testing.T) {
		var got []events.Envelope
		q := events.AllQuery{Limit: 3}
		for {
			page, err := s.ReadAll(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < q.Limit {
				break
			}
			q.After = page[len(page)-1].GlobalPosition
		}
		if !slices.Equal(ids(got), ids(all)) {
			t.Errorf("pages of 3 read %d events, want the %d of one read", len(got), len(all))
		}
		page, err := s.ReadAll(ctx, events.AllQuery{After: all[9].GlobalPosition, Limit: 5})
		if err != nil || !slices.Equal(ids(page), ids(all[10:15])) {
			t.Errorf("5 after position %d: %d events, %v; want events 10 to 14", all[9].GlobalPosition, len(page), err)
		}
		if page, err := s.ReadAll(ctx, events.AllQuery{After: all[19].GlobalPosition, Limit: 5}); err != nil || len(page) != 0 {
			t.Errorf("after the last position: %d events, %v; want none", len(page), err)
		}
	})

	since, until := all[6].RecordedAt, all[15].RecordedAt
	isType := func(types ...string) func(events.Envelope) bool {
		return func(e events.Envelope) bool { return slices.Contains(types, e.Type) }
	}
	for _, tc := range []struct {
		name string
		q    events.AllQuery
		want []events.Envelope
	}{
		{"Types", events.AllQuery{Types: []string{"ItemRemoved", "UserCreated"}}, filter(all, isType("ItemRemoved", "UserCreated"))},
		{"UnknownType", events.AllQuery{Types: []string{"Nothing"}}, nil},
		{"EmptyTypes", events.AllQuery{Types: []string{}}, all},
		{"Since", events.AllQuery{Since: since}, filter(all, func(e events.Envelope) bool { return !e.RecordedAt.Before(since) })},
		{"Until", events.AllQuery{Until: until}, filter(all, func(e events.Envelope) bool { return e.RecordedAt.Before(until) })},
		{"SinceInOtherZone", events.AllQuery{Since: since.In(time.FixedZone("UTC+5", 5*3600))},
			filter(all, func(e events.Envelope) bool { return !e.RecordedAt.Before(since) })},
		{"SinceUntilTypeAfter", events.AllQuery{Since: since, Until: until, Types: []string{"ItemAdded"}, After: all[8].GlobalPosition},
			filter(all, func(e events.Envelope) bool {
				return !e.RecordedAt.Before(since) && e.RecordedAt.Before(until) && e.Type == "ItemAdded" && e.GlobalPosition > all[8].GlobalPosition
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Read in pages of 2, so that a filter is seen to apply before the limit.
			var got []events.Envelope
			q := tc.q
			q.Limit = 2
			for {
				page, err := s.ReadAll(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				if len(page) < q.Limit {
					break
				}
				q.After = page[len(page)-1].GlobalPosition
			}
			if !slices.Equal(ids(got), ids(tc.want)) {
				t.Errorf("read %d events %v, want %d %v", len(got), ids(got), len(tc.want), ids(tc.want))
			}
		})
	}
}

// testStreamInfo: a stream's metadata follows its events; a stream without events is
// ErrNotFound.
func testStreamInfo(t *testing.T, s events.Store) {
	ctx := t.Context()
	notFound(t, s, "order-i")
	mustAppend(t, s, "order-i", events.NoStream(), event(t, "OrderCreated", nil))
	mustAppend(t, s, "user-i", events.NoStream(), event(t, "UserCreated", nil))
	first, err := s.StreamInfo(ctx, "order-i")
	if err != nil {
		t.Fatal(err)
	}
	created := readStream(t, s, "order-i")[0].RecordedAt
	if first.StreamID != "order-i" || first.Category != "order" || first.Version != 0 || first.EventCount != 1 ||
		first.CreatedAt.IsZero() || first.CreatedAt.Location() != time.UTC || !first.UpdatedAt.Equal(created) || first.UpdatedAt.Location() != time.UTC {
		t.Errorf("after one event: %+v, want version 0, 1 event, UTC times, updated at %v", first, created)
	}
	mustAppend(t, s, "order-i", events.Exact(0), batch(t, 2, "ItemAdded")...)
	mustAppend(t, s, "order-i", events.Exact(2), batch(t, 2, "ItemAdded")...)
	evs := readStream(t, s, "order-i")
	info, err := s.StreamInfo(ctx, "order-i")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 4 || info.EventCount != 5 || info.Category != "order" || !info.UpdatedAt.Equal(evs[4].RecordedAt) {
		t.Errorf("after five events: %+v, want version 4, 5 events, updated at %v", info, evs[4].RecordedAt)
	}
	if !info.CreatedAt.Equal(first.CreatedAt) || !info.UpdatedAt.After(info.CreatedAt) {
		t.Errorf("created at %v then %v, updated at %v: want the creation time kept, and updated after it", first.CreatedAt, info.CreatedAt, info.UpdatedAt)
	}
	other, err := s.StreamInfo(ctx, "user-i")
	if err != nil || other.Version != 0 || other.Category != "user" {
		t.Errorf("the other stream: %+v, %v; want version 0 of category user", other, err)
	}
	if _, err := s.StreamInfo(ctx, "not a stream id"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a malformed stream id: %v, want ErrNotFound", err)
	}
}

// testStats: totals, counts by type and the most recent events, newest first.
func testStats(t *testing.T, s events.Store) {
	ctx := t.Context()
	empty, err := s.Stats(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if empty.TotalEvents != 0 || empty.TotalStreams != 0 || empty.EventsByType == nil || len(empty.EventsByType) != 0 ||
		empty.RecentEvents == nil || len(empty.RecentEvents) != 0 {
		t.Errorf("an empty store's stats: %#v, want zeros and empty, non-nil map and slice", empty)
	}
	mustAppend(t, s, "order-s1", events.NoStream(), batch(t, 3, "ItemAdded")...)
	mustAppend(t, s, "order-s2", events.NoStream(), append(batch(t, 2, "ItemAdded"), event(t, "ItemRemoved", nil))...)
	mustAppend(t, s, "user-s3", events.NoStream(), event(t, "UserCreated", nil))
	mustAppend(t, s, "order-s1", events.Exact(2), event(t, "ItemRemoved", nil))
	all := readAll(t, s)
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)

	for _, recent := range []int{3, 8, 100, 0, -1} {
		t.Run(fmt.Sprintf("Recent%d", recent), func(t *testing.T) {
			st, err := s.Stats(ctx, recent)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"ItemAdded": 5, "ItemRemoved": 2, "UserCreated": 1}
			if st.TotalEvents != 8 || st.TotalStreams != 3 || fmt.Sprint(st.EventsByType) != fmt.Sprint(want) {
				t.Errorf("stats: %d events, %d streams, %v; want 8, 3, %v", st.TotalEvents, st.TotalStreams, st.EventsByType, want)
			}
			wantRecent := newestFirst[:min(max(recent, 0), len(all))]
			if st.RecentEvents == nil || !slices.Equal(ids(st.RecentEvents), ids(wantRecent)) {
				t.Fatalf("recent events %v, want %v (newest first, never nil)", ids(st.RecentEvents), ids(wantRecent))
			}
			for i, e := range st.RecentEvents {
				if diff := sameEnvelope(e, wantRecent[i]); diff != "" {
					t.Errorf("recent event %d: %s", i, diff)
				}
			}
		})
	}
}

// testVersionAt: the version of a stream's last event recorded at or before a time.
func testVersionAt(t *testing.T, s events.Store) {
	ctx := t.Context()
	at := func(streamID string, tm time.Time) int64 {
		t.Helper()
		v, err := s.VersionAt(ctx, streamID, tm)
		if err != nil {
			t.Fatalf("version of %s at %v: %v", streamID, tm, err)
		}
		return v
	}
	if v := at("order-v", time.Now()); v != -1 {
		t.Errorf("a missing stream is at version %d, want -1", v)
	}
	for i := range 6 {
		mustAppend(t, s, "order-v", events.Any(), batch(t, 1+i%2, "ItemAdded")...)
		mustAppend(t, s, "order-w", events.Any(), event(t, "ItemAdded", nil))
	}
	evs := readStream(t, s, "order-v")
	east := time.FixedZone("UTC+9", 9*3600)
	for _, e := range evs {
		want := versionAt(evs, e.RecordedAt)
		if got := at("order-v", e.RecordedAt); got != want {
			t.Errorf("at the time of version %d (%v): version %d, want %d", e.Version, e.RecordedAt, got, want)
		}
		if got := at("order-v", e.RecordedAt.In(east)); got != want {
			t.Errorf("at the time of version %d in another zone: version %d, want %d", e.Version, got, want)
		}
	}
	if v := at("order-v", evs[0].RecordedAt.Add(-time.Microsecond)); v != -1 {
		t.Errorf("before the first event: version %d, want -1", v)
	}
	if v, last := at("order-v", time.Now().Add(time.Hour)), evs[len(evs)-1].Version; v != last {
		t.Errorf("in an hour: version %d, want the last, %d", v, last)
	}
}

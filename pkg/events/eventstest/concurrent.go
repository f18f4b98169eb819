package eventstest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

// testConcurrentExpectedVersion: appenders released together, all expecting the same version
// of one stream: exactly one wins, and every other gets a conflict naming the winner's version.
// Several rounds, each racing for the version after the last winner's, give a narrow race in
// a store more chances to show.
func testConcurrentExpectedVersion(t *testing.T, s events.Store) {
	t.Run("NoStream", func(t *testing.T) {
		for i := range rounds {
			race(t, s, fmt.Sprintf("order-new%d", i), events.NoStream(), -1)
		}
	})
	t.Run("Exact", func(t *testing.T) {
		mustAppend(t, s, "order-race", events.NoStream(), event(t, "OrderCreated", nil))
		for at := int64(0); at < 2*rounds; at += 2 {
			race(t, s, "order-race", events.Exact(at), at)
		}
	})
}

// rounds is how many races each expected-version mode runs.
const rounds = 8

func race(t *testing.T, s events.Store, streamID string, expected events.ExpectedVersion, at int64) {
	const n = 24
	ctx := t.Context()
	batches := make([][]events.Event, n)
	for i := range batches {
		batches[i] = batch(t, 2, "ItemAdded")
	}
	results := make([]events.AppendResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Append(ctx, streamID, expected, batches[i], events.AppendOptions{})
		})
	}
	close(start)
	wg.Wait()

	var winners []int
	for i, err := range errs {
		var conflict *events.VersionConflictError
		switch {
		case err == nil:
			winners = append(winners, i)
		case errors.As(err, &conflict):
			if conflict.Actual != at+2 || conflict.Expected != expected {
				t.Errorf("appender %d: conflict %+v, want expected %s and actual %d", i, conflict, expected, at+2)
			}
		default:
			t.Errorf("appender %d: %v", i, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d appenders expecting %s on %s won, want exactly 1", len(winners), n, expected, streamID)
	}
	winner := winners[0]
	got := readStream(t, s, streamID)
	if !slices.Equal(versions(got), span(0, at+2)) {
		t.Errorf("versions %v, want 0..%d", versions(got), at+2)
	}
	if tail := ids(got[at+1:]); !slices.Equal(tail, results[winner].EventIDs) {
		t.Errorf("events after version %d are %v, want the winner's %v", at, tail, results[winner].EventIDs)
	}
}

// testConcurrentAppends: appenders that expect any version (or only that the stream exists)
// append concurrently to a few streams; none is refused, and every stream holds each append's
// events at the versions its result says, without gaps or duplicates.
func testConcurrentAppends(t *testing.T, s events.Store) {
	ctx := t.Context()
	streams := []string{"order-a", "order-b", "order-c"}
	for _, stream := range streams {
		mustAppend(t, s, stream, events.NoStream(), event(t, "OrderCreated", nil))
	}
	const workers, perWorker = 8, 12
	type done struct {
		stream string
		res    events.AppendResult
	}
	results := make([][]done, workers)
	errs := make([][]error, workers)
	batches := make([][][]events.Event, workers)
	for w := range batches {
		for i := range perWorker {
			batches[w] = append(batches[w], batch(t, 1+i%3, "ItemAdded"))
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for i, evs := range batches[w] {
				stream := streams[(w+i)%len(streams)]
				expected := events.Any()
				if (w+i)%2 == 1 {
					expected = events.StreamExists()
				}
				res, err := s.Append(ctx, stream, expected, evs, events.AppendOptions{})
				if err != nil {
					errs[w] = append(errs[w], err)
					continue
				}
				results[w] = append(results[w], done{stream, res})
			}
		})
	}
	close(start)
	wg.Wait()
	for _, werrs := range errs {
		for _, err := range werrs {
			t.Errorf("append: %v", err)
		}
	}

	total := int64(len(streams))
	stored := map[string][]events.Envelope{}
	for _, stream := range streams {
		got := readStream(t, s, stream)
		if !slices.Equal(versions(got), span(0, int64(len(got))-1)) {
			t.Errorf("%s: versions %v, want 0..%d without gaps or duplicates", stream, versions(got), len(got)-1)
		}
		stored[stream] = got
		total += int64(len(got)) - 1
	}
	seen := map[uuid.UUID]bool{}
	for _, wres := range results {
		for _, d := range wres {
			got := stored[d.stream]
			if d.res.LastVersion >= int64(len(got)) || d.res.FirstVersion < 1 {
				t.Errorf("%s: result %+v outside the stream's %d events", d.stream, d.res, len(got))
				continue
			}
			if at := ids(got[d.res.FirstVersion : d.res.LastVersion+1]); !slices.Equal(at, d.res.EventIDs) {
				t.Errorf("%s: versions %d..%d hold %v, the append's result says %v", d.stream, d.res.FirstVersion, d.res.LastVersion, at, d.res.EventIDs)
			}
			for _, id := range d.res.EventIDs {
				seen[id] = true
			}
		}
	}
	if int64(len(seen)) != total-int64(len(streams)) {
		t.Errorf("the appends' results name %d events, the streams hold %d", len(seen), total-int64(len(streams)))
	}

	all := readAll(t, s)
	for i := 1; i < len(all); i++ {
		if all[i].GlobalPosition <= all[i-1].GlobalPosition {
			t.Fatalf("read all: position %d after %d", all[i].GlobalPosition, all[i-1].GlobalPosition)
		}
	}
	st, err := s.Stats(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(all)) != total || st.TotalEvents != total || st.TotalStreams != int64(len(streams)) ||
		st.EventsByType["ItemAdded"] != total-int64(len(streams)) {
		t.Errorf("read all %d events, stats %+v; want %d events in %d streams", len(all), st, total, len(streams))
	}
}

// RaceVersion releases n appends together, appendOne(i) making the i-th, all expecting one
// version of one stream, and returns their results and the index of the one that won. It fails
// the test unless exactly one append succeeded and every other failed with a
// *events.VersionConflictError naming actual, the stream's version after the winner's append.
// A store's own tests use it to race more appenders, or to check what their store recorded.
func RaceVersion(tb testing.TB, n int, actual int64, appendOne func(i int) (events.AppendResult, error)) (results []events.AppendResult, winner int) {
	tb.Helper()
	results = make([]events.AppendResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = appendOne(i)
		})
	}
	close(start)
	wg.Wait()
	winner, wins := -1, 0
	for i, err := range errs {
		var conflict *events.VersionConflictError
		switch {
		case err == nil:
			winner, wins = i, wins+1
		case errors.As(err, &conflict):
			if conflict.Actual != actual {
				tb.Errorf("appender %d: conflict names actual %d, want %d", i, conflict.Actual, actual)
			}
		default:
			tb.Errorf("appender %d: %v", i, err)
		}
	}
	if wins != 1 {
		tb.Fatalf("%d of %d appenders expecting one version won, want exactly 1", wins, n)
	}
	return results, winner
}

package readmodel_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// progressFunc receives the rebuild's progress lines, one per call, synchronously: a test can
// act between the rebuild's steps.
type progressFunc func(line string)

func (f progressFunc) Write(b []byte) (int, error) {
	f(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// goTB is the testing.TB of a goroutine a test starts: Fatal reports the failure and ends the
// goroutine, not the test's.
type goTB struct{ testing.TB }

func (g goTB) Fatal(args ...any)                 { g.TB.Error(args...); runtime.Goexit() }
func (g goTB) Fatalf(format string, args ...any) { g.TB.Errorf(format, args...); runtime.Goexit() }
func (g goTB) FailNow()                          { g.TB.Fail(); runtime.Goexit() }

func TestRebuild_EqualsLive(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 37}) // pages that split streams
	ctx := context.Background()
	w := newWorkload(e, 7)
	for round, gen := range []int{2, 3} {
		for _, ev := range w.run(t, 500) {
			e.mustApply(t, ev)
		}
		live := dump(t, e.proj)
		var lines []string
		st, err := e.proj.Rebuild(ctx, progressFunc(func(l string) { lines = append(lines, l) }))
		if err != nil {
			t.Fatalf("rebuild %d: %v", round, err)
		}
		if st.From != gen-1 || st.To != gen || len(st.Stopped) != 0 || st.Filled != int64(len(e.allEvents(t))) || st.CaughtUp != 0 {
			t.Errorf("rebuild %d: %+v; want generation %d -> %d, every event filled, none caught up", round, st, gen-1, gen)
		}
		if g, err := e.proj.Generation(ctx); err != nil || g != gen {
			t.Errorf("live generation %d, %v; want %d", g, err, gen)
		}
		if tableExists(t, e.pool, readmodel.UsersTable(gen-1)) || tableExists(t, e.pool, readmodel.OrdersTable(gen-1)) {
			t.Errorf("the tables of generation %d were not dropped", gen-1)
		}
		var params []string
		if err := e.pool.QueryRow(ctx, `select reloptions from pg_class where oid = $1::regclass`, readmodel.OrdersTable(gen)).Scan(&params); err != nil || len(params) != 1 || params[0] != "fillfactor=80" {
			t.Errorf("storage parameters of %s: %v, %v; want those of the first generation", readmodel.OrdersTable(gen), params, err)
		}
		sameState(t, dump(t, e.proj), live)
		text := strings.Join(lines, "\n")
		for _, want := range []string{"building generation", "fill: snapshot taken", "events of", "catch-up:", "switch:", "drop:", "rebuild: done"} {
			if !strings.Contains(text, want) {
				t.Errorf("progress lacks %q:\n%s", want, text)
			}
		}
		// Events the rebuild applied are duplicates for the live projector.
		for _, ev := range e.allEvents(t)[:20] {
			if err := e.apply(t, ev); err != nil {
				t.Errorf("apply %s@%d after the rebuild: %v, want nil (skipped)", ev.StreamID, ev.Version, err)
			}
		}
	}
}

// TestRebuild_WhileLive rebuilds while a goroutine keeps appending events and applying them
// live, and while the rebuild's own progress lines add more between its steps: after the
// snapshot (applied live, to the old generation) and after the first catch-up (not applied
// live, so that only the catch-up under the switch's lock can bring them over).
func TestRebuild_WhileLive(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 50})
	ctx := context.Background()
	bg, burst := newWorkload(e, 11), newWorkload(e, 12)
	for _, ev := range append(bg.run(t, 300), burst.run(t, 100)...) {
		e.mustApply(t, ev)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	var during atomic.Int64 // events the goroutine applied while the rebuild ran
	var rebuilding atomic.Bool
	go func() {
		defer close(done)
		gt := goTB{t}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, ev := range bg.step(gt) {
				if err := e.apply(gt, ev); err != nil {
					gt.Fatalf("live apply of %s@%d: %v", ev.StreamID, ev.Version, err)
				}
				if rebuilding.Load() {
					during.Add(1)
				}
			}
		}
	}()

	// Queries keep working through the switch and the drop of the old tables.
	readerDone := make(chan struct{})
	var reads atomic.Int64
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := e.proj.Users(ctx, readmodel.UserQuery{Limit: 5}); err != nil {
				t.Errorf("query during the rebuild: %v", err)
				return
			}
			if _, err := e.proj.OrderStats(ctx); err != nil {
				t.Errorf("query during the rebuild: %v", err)
				return
			}
			reads.Add(1)
		}
	}()

	var afterSnapshot, afterCatchUp []events.Envelope
	pages := 0
	rebuilding.Store(true)
	st, err := e.proj.Rebuild(ctx, progressFunc(func(line string) {
		switch {
		case strings.HasPrefix(line, "fill: snapshot taken"):
			afterSnapshot = burst.run(t, 60)
			e.mustApply(t, afterSnapshot...)
		case strings.HasPrefix(line, "fill: ") && pages == 0:
			pages++
			e.mustApply(t, burst.run(t, 20)...)
		case strings.HasPrefix(line, "catch-up:"):
			afterCatchUp = burst.run(t, 60)
		}
	}))
	rebuilding.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(afterSnapshot) == 0 || len(afterCatchUp) == 0 {
		t.Fatal("the bursts appended nothing")
	}
	if st.CaughtUp < int64(len(afterSnapshot)) || st.SwitchCaughtUp < int64(len(afterCatchUp)) {
		t.Errorf("caught up %d events (%d under the lock); the bursts appended %d after the snapshot and %d after the first catch-up",
			st.CaughtUp, st.SwitchCaughtUp, len(afterSnapshot), len(afterCatchUp))
	}
	for _, ev := range append(afterSnapshot, afterCatchUp...) {
		if v := version(t, e.proj, ev.StreamID); v < ev.Version {
			t.Errorf("right after the switch %s is at version %d; the rebuild missed version %d", ev.StreamID, v, ev.Version)
		}
	}
	close(stop)
	<-done
	<-readerDone
	if reads.Load() == 0 {
		t.Error("no query ran during the rebuild")
	}
	if during.Load() == 0 {
		t.Error("the live goroutine applied nothing while the rebuild ran")
	}
	t.Logf("rebuild: %+v; %d events applied live meanwhile", st, during.Load())

	// Apply what is left (the late burst, and anything of the goroutine's), then compare
	// with a fresh full apply of every event into other tables.
	all := e.allEvents(t)
	e.mustApply(t, all...)
	fresh := newEnv(t)
	fresh.mustApply(t, all...)
	sameState(t, dump(t, e.proj), dump(t, fresh.proj))
}

func TestRebuild_StoppedStream(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 4})
	ctx := context.Background()
	w := newWorkload(e, 21)
	for _, ev := range w.run(t, 100) {
		e.mustApply(t, ev)
	}
	// An event the writer would never record: the order has no such item. The live projector
	// refuses it for good, and the stream is parked behind it.
	user := newID()
	us := userStream(user)
	e.mustApply(t, e.appendRaw(t, us, domain.EventUserCreated, domain.UserCreated{UserID: user.String(), Email: "p@example.com", Name: "P"}))
	order := newID()
	os := orderStream(order)
	e.mustApply(t, e.appendRaw(t, os, domain.EventOrderCreated, domain.OrderCreated{OrderID: order.String(), UserID: user.String(), Items: []domain.Item{}}))
	poison := e.appendRaw(t, os, domain.EventItemRemoved, domain.ItemRemoved{ItemID: "ghost"})
	if err := e.apply(t, poison); !consume.IsPermanent(err) {
		t.Fatalf("live apply of the poison: %v, want Permanent", err)
	}
	e.appendRaw(t, os, domain.EventOrderCancelled, domain.OrderCancelled{Reason: "parked"})
	bad := e.appendRaw(t, "user-NOT-A-UUID", domain.EventUserCreated, domain.UserCreated{Email: "q@example.com", Name: "Q"})
	if err := e.apply(t, bad); !consume.IsPermanent(err) {
		t.Fatalf("live apply of a stream without a UUID: %v, want Permanent", err)
	}
	live := dump(t, e.proj)

	st, err := e.proj.Rebuild(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Stopped) != 2 || !strings.Contains(st.Stopped[os], `no item "ghost"`) || !strings.Contains(st.Stopped["user-NOT-A-UUID"], "UUID") {
		t.Errorf("stopped streams: %v; want %s and user-NOT-A-UUID with their reasons", st.Stopped, os)
	}
	if v := version(t, e.proj, os); v != 0 {
		t.Errorf("%s is at version %d, want 0 (before the poison)", os, v)
	}
	sameState(t, dump(t, e.proj), live)
}

func TestRebuild_OneAtATime(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, ev := range newWorkload(e, 31).run(t, 30) {
		e.mustApply(t, ev)
	}
	var second error
	started := false
	st, err := e.proj.Rebuild(ctx, progressFunc(func(line string) {
		if !started {
			started = true
			_, second = readmodel.Rebuild(ctx, e.pool, nil)
		}
	}))
	if err != nil || st.To != 2 {
		t.Fatalf("first rebuild: %+v, %v", st, err)
	}
	if second == nil || !strings.Contains(second.Error(), "another rebuild") {
		t.Fatalf("second rebuild during the first: %v, want refused", second)
	}
	// Once the first is done, the next may run.
	if st, err := readmodel.Rebuild(ctx, e.pool, nil); err != nil || st.To != 3 {
		t.Fatalf("third rebuild: %+v, %v", st, err)
	}
}

func TestRebuild_FailureKeepsTheLiveGeneration(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 10})
	ctx := context.Background()
	for _, ev := range newWorkload(e, 41).run(t, 100) {
		e.mustApply(t, ev)
	}
	live := dump(t, e.proj)
	for _, phase := range []string{"fill: ", "catch-up:"} {
		cctx, cancel := context.WithCancel(ctx)
		_, err := e.proj.Rebuild(cctx, progressFunc(func(line string) {
			if strings.HasPrefix(line, phase) {
				cancel()
			}
		}))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("rebuild cancelled at %q: %v, want context.Canceled", phase, err)
		}
		if g, err := e.proj.Generation(ctx); err != nil || g != 1 {
			t.Fatalf("after the failed rebuild the live generation is %d, %v; want 1", g, err)
		}
		sameState(t, dump(t, e.proj), live)
	}
	// The tables the second attempt left behind are replaced by the next rebuild.
	if !tableExists(t, e.pool, readmodel.UsersTable(2)) {
		t.Error("a rebuild that failed after its fill should leave its tables for the next one to replace")
	}
	st, err := e.proj.Rebuild(ctx, nil)
	if err != nil || st.To != 2 {
		t.Fatalf("rebuild after the failures: %+v, %v", st, err)
	}
	sameState(t, dump(t, e.proj), live)
}

// TestRebuild_QueryOfADroppedGeneration runs a rebuild, which drops the old tables, right
// after a query read the pointer: the query finds its table gone and runs again on the new
// generation.
func TestRebuild_QueryOfADroppedGeneration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, ev := range newWorkload(e, 51).run(t, 40) {
		e.mustApply(t, ev)
	}
	want := dump(t, e.proj)
	rebuilt := false
	readmodel.SetReadHook(e.proj, func() {
		if !rebuilt {
			rebuilt = true
			if _, err := readmodel.Rebuild(ctx, e.pool, nil); err != nil {
				t.Errorf("rebuild: %v", err)
			}
		}
	})
	got := dump(t, e.proj)
	readmodel.SetReadHook(e.proj, nil)
	if !rebuilt {
		t.Fatal("the hook did not run")
	}
	if g, err := e.proj.Generation(ctx); err != nil || g != 2 {
		t.Fatalf("generation %d, %v; want 2", g, err)
	}
	sameState(t, got, want)
}

// TestRebuild_SwitchWaitsForApplies holds an Apply's transaction open across a rebuild: the
// switch waits for it, and afterwards the new generation has its event too.
func TestRebuild_SwitchWaitsForApplies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := newWorkload(e, 61)
	e.mustApply(t, w.run(t, 30)...)
	var pending []events.Envelope
	for len(pending) == 0 {
		pending = w.step(t)
	}
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := e.proj.Apply(ctx, tx, pending[0]); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}

	type result struct {
		st  readmodel.RebuildStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := e.proj.Rebuild(ctx, nil)
		done <- result{st, err}
	}()
	// Poll, with a deadline, until the rebuild waits for the open transaction.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := e.pool.QueryRow(ctx, `select count(*) from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the rebuild ended (%+v, %v) while an Apply held the pointer", r.st, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild never waited for the open Apply")
		}
		runtime.Gosched()
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.st.To != 2 {
		t.Fatalf("rebuild: %+v, %v", r.st, r.err)
	}
	e.mustApply(t, pending...) // the rest of the command's events, if any
	fresh := newEnv(t)
	fresh.mustApply(t, e.allEvents(t)...)
	sameState(t, dump(t, e.proj), dump(t, fresh.proj))
}

// TestRebuild_AppliesWaitForTheSwitch starts applies (one event, and a batch) while a switch
// holds its lock: they wait for it, and then apply to the new generation, not to the old one
// the switch is leaving. The events are not in the store, so no catch-up brings them over.
func TestRebuild_AppliesWaitForTheSwitch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustApply(t, newWorkload(e, 71).run(t, 30)...)
	one := ev(userStream(newID()), 0, domain.EventUserCreated, domain.UserCreated{Email: "w@example.com", Name: "W"})
	batchUser := newID()
	batch := []events.Envelope{
		ev(userStream(batchUser), 0, domain.EventUserCreated, domain.UserCreated{Email: "b@example.com", Name: "B"}),
		ev(userStream(batchUser), 1, domain.EventUserDeactivated, domain.UserDeactivated{Reason: "gone"}),
	}
	applied := make(chan error, 2)
	hooked := false
	readmodel.SetSwitchHook(e.proj, func(pid int) {
		hooked = true
		go func() { applied <- e.apply(goTB{t}, one) }()
		go func() { applied <- e.handleBatch(goTB{t}, batch) }()
		// Wait, with a deadline, until both wait for the switch's transaction.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var waiting int
			if err := e.pool.QueryRow(ctx, `select count(*) from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`, pid).Scan(&waiting); err != nil {
				t.Error(err)
				return
			}
			if waiting == 2 {
				return
			}
			select {
			case err := <-applied:
				t.Errorf("an apply ended (%v) while the switch held its lock", err)
				return
			default:
			}
			if time.Now().After(deadline) {
				t.Errorf("%d of 2 applies wait for the switch", waiting)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	st, err := e.proj.Rebuild(ctx, nil)
	readmodel.SetSwitchHook(e.proj, nil)
	if err != nil || st.To != 2 {
		t.Fatalf("rebuild: %+v, %v", st, err)
	}
	if !hooked {
		t.Fatal("the switch hook did not run")
	}
	for range 2 {
		if err := <-applied; err != nil {
			t.Errorf("apply after the switch: %v", err)
		}
	}
	if v := version(t, e.proj, one.StreamID); v != 0 {
		t.Errorf("%s is at version %d in the new generation, want 0", one.StreamID, v)
	}
	if v := version(t, e.proj, batch[0].StreamID); v != 1 {
		t.Errorf("%s is at version %d in the new generation, want 1", batch[0].StreamID, v)
	}
}

package readmodel_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// now is the database's clock, which sets the events' recording times.
func (e *env) now(tb testing.TB) time.Time {
	tb.Helper()
	var now time.Time
	if err := e.pool.QueryRow(context.Background(), `select clock_timestamp()`).Scan(&now); err != nil {
		tb.Fatal(err)
	}
	return now
}

// exec runs statements on the live generation's tables, named {users} and {orders} in them.
func (e *env) exec(tb testing.TB, sqls ...string) {
	tb.Helper()
	ctx := context.Background()
	g, err := e.proj.Generation(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	r := strings.NewReplacer("{users}", readmodel.UsersTable(g), "{orders}", readmodel.OrdersTable(g))
	for _, sql := range sqls {
		if _, err := e.pool.Exec(ctx, r.Replace(sql)); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
}

func TestProjection_Reprocess(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 13}) // pages that split streams
	ctx := context.Background()
	w := newWorkload(e, 21)
	e.mustApply(t, w.run(t, 150)...)
	since := e.now(t)
	inRange := w.run(t, 150)
	e.mustApply(t, inRange...)
	until := e.now(t)
	e.mustApply(t, w.run(t, 100)...)
	want := dump(t, e.proj)

	touched := map[uuid.UUID]bool{}
	for _, ev := range inRange {
		touched[uuid.MustParse(strings.SplitN(ev.StreamID, "-", 2)[1])] = true
	}
	var applied int64 // the events of the touched streams, their whole histories
	for _, ev := range e.allEvents(t) {
		if touched[uuid.MustParse(strings.SplitN(ev.StreamID, "-", 2)[1])] {
			applied++
		}
	}
	// Damage every row, and lose one row of the range.
	e.exec(t, `update {users} set name = 'damaged'`, `update {orders} set total_cents = total_cents + 1`,
		`delete from {orders} where id = '`+strings.SplitN(inRange[len(inRange)-1].StreamID, "-", 2)[1]+`'
			and exists (select from {orders})`)

	plan, err := e.proj.PlanReprocess(ctx, since, until)
	if err != nil || plan.Streams != len(touched) || plan.Events != int64(len(inRange)) {
		t.Fatalf("plan %+v, %v; want %d streams with %d events", plan, err, len(touched), len(inRange))
	}
	var lines []string
	st, err := e.proj.Reprocess(ctx, since, until, progressFunc(func(l string) { lines = append(lines, l) }))
	if err != nil {
		t.Fatal(err)
	}
	if st.Streams != len(touched) || st.Events != int64(len(inRange)) || st.Processed != st.Events || st.Skipped != 0 ||
		len(st.Errors) != 0 || st.Applied != applied || st.Duration <= 0 {
		t.Errorf("stats %+v; want %d streams, %d events processed, %d applied, no errors", st, len(touched), len(inRange), applied)
	}
	if text := strings.Join(lines, "\n"); !strings.Contains(text, "streams rebuilt") {
		t.Errorf("progress:\n%s", text)
	}

	got := dump(t, e.proj)
	if len(got.Users) != len(want.Users) || len(got.Orders) != len(want.Orders) {
		t.Fatalf("got %d users and %d orders, want %d and %d", len(got.Users), len(got.Orders), len(want.Users), len(want.Orders))
	}
	var kept int
	for i, u := range got.Users {
		switch {
		case touched[u.ID] && jsonOf(u) != jsonOf(want.Users[i]):
			t.Errorf("user of the range:\n got %s\nwant %s", jsonOf(u), jsonOf(want.Users[i]))
		case !touched[u.ID] && u.Name != "damaged":
			t.Errorf("user %s has no event in the range but was reprocessed: %s", u.ID, jsonOf(u))
		case !touched[u.ID]:
			kept++
		}
	}
	for i, o := range got.Orders {
		switch {
		case touched[o.ID] && jsonOf(o) != jsonOf(want.Orders[i]):
			t.Errorf("order of the range:\n got %s\nwant %s", jsonOf(o), jsonOf(want.Orders[i]))
		case !touched[o.ID] && o.TotalCents != want.Orders[i].TotalCents+1:
			t.Errorf("order %s has no event in the range but was reprocessed: %s", o.ID, jsonOf(o))
		case !touched[o.ID]:
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("every stream had an event in the range: the test shows nothing about until and since")
	}

	// The live projector skips the events of the range as applied before.
	for _, ev := range inRange[:20] {
		if err := e.apply(t, ev); err != nil {
			t.Errorf("apply %s@%d after the reprocess: %v, want nil (skipped)", ev.StreamID, ev.Version, err)
		}
	}
}

func TestProjection_Reprocess_Refused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	order := "order-" + uuid.Must(uuid.NewV7()).String()
	user := "user-" + uuid.Must(uuid.NewV7()).String()
	item := domain.Item{ID: "sku-1", Name: "Thing", PriceCents: 100, Quantity: 1}
	e.mustApply(t, e.appendRaw(t, order, domain.EventOrderCreated, map[string]any{"user_id": uuid.NewString(), "items": []domain.Item{item}, "total_cents": 100}))
	since := e.now(t)
	refused := e.appendRaw(t, order, domain.EventItemRemoved, map[string]string{"item_id": "sku-nope"})
	e.appendRaw(t, order, domain.EventItemAdded, map[string]any{"item": item})
	e.mustApply(t, e.appendRaw(t, user, domain.EventUserCreated, map[string]string{"email": "u@example.com", "name": "U"}))
	until := e.now(t)
	e.exec(t, `update {orders} set total_cents = 7`)

	st, err := e.proj.Reprocess(ctx, since, until, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Streams != 2 || st.Events != 3 || st.Processed != 1 || st.Skipped != 2 || st.Applied != 2 || len(st.Errors) != 1 {
		t.Fatalf("stats %+v; want 2 streams, 3 events: 1 processed, 2 skipped behind 1 error, 2 applied", st)
	}
	if got := st.Errors[0]; got.StreamID != order || got.EventID != refused.EventID || got.Version != 1 ||
		got.Type != domain.EventItemRemoved || !strings.Contains(got.Err, "sku-nope") {
		t.Errorf("error %+v; want the ItemRemoved %s at version 1", got, refused.EventID)
	}
	o, err := e.proj.Order(ctx, uuid.MustParse(strings.TrimPrefix(order, "order-")))
	if err != nil || o.Version != 0 || o.TotalCents != 100 {
		t.Errorf("order %+v, %v; want version 0 with 100 cents, as its history makes it up to the refused event", o, err)
	}
	if _, err := e.proj.Reprocess(ctx, until, since, nil); err == nil || !strings.Contains(err.Error(), "must be after") {
		t.Errorf("until before since: %v", err)
	}
}

// TestProjection_Reprocess_WhileLive reprocesses, a few streams per transaction, while a
// goroutine keeps appending events and applying them live, many to the streams being rebuilt:
// no live apply fails, and the read models end equal to a rebuild from the event store.
func TestProjection_Reprocess_WhileLive(t *testing.T) {
	e := newEnv(t, readmodel.Options{BatchSize: 7})
	readmodel.SetReprocessChunk(e.proj, 3)
	ctx := context.Background()
	w := newWorkload(e, 31)
	e.mustApply(t, w.run(t, 100)...)
	since := e.now(t)
	inRange := w.run(t, 200)
	e.mustApply(t, inRange...)
	until := e.now(t)
	var ids []string
	for _, ev := range inRange {
		ids = append(ids, strings.SplitN(ev.StreamID, "-", 2)[1])
	}
	list := "'{" + strings.Join(ids, ",") + "}'::uuid[]"
	// Damage that the live statements do not read: a damaged total would make them refuse
	// events, as they would in production.
	e.exec(t, `update {users} set name = 'damaged' where id = any(`+list+`)`,
		`update {orders} set cancellation_reason = 'damaged' where id = any(`+list+`)`)

	stop := make(chan struct{})
	done := make(chan struct{})
	var during atomic.Int64
	go func() {
		defer close(done)
		gt := goTB{t}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, ev := range w.step(gt) {
				if err := e.apply(gt, ev); err != nil {
					gt.Fatalf("live apply of %s@%d: %v", ev.StreamID, ev.Version, err)
				}
				during.Add(1)
			}
		}
	}()
	st, err := e.proj.Reprocess(ctx, since, until, nil)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if st.Processed != int64(len(inRange)) || len(st.Errors) != 0 {
		t.Errorf("stats %+v; want %d events processed, no errors", st, len(inRange))
	}
	if during.Load() == 0 {
		t.Error("no event was applied live during the reprocess")
	}
	got := dump(t, e.proj)
	if _, err := e.proj.Rebuild(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sameState(t, got, dump(t, e.proj))
}

package postgres_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// pager reads the all-stream forward as a client of GET /v1/events does: page after page from
// the last position it has read, never looking back.
type pager struct {
	store     events.Reader
	after     int64
	positions []int64
}

// drain reads pages of 2 until one comes back short.
func (p *pager) drain(tb testing.TB) {
	tb.Helper()
	for {
		page, err := p.store.ReadAll(tb.Context(), events.AllQuery{After: p.after, Limit: 2})
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range page {
			p.positions = append(p.positions, e.GlobalPosition)
			p.after = e.GlobalPosition
		}
		if len(page) < 2 {
			return
		}
	}
}

// A transaction that took a lower position than appends committed after it began is still
// read by a reader that pages forward past those appends before it commits: the reader is
// held below the open transaction's position until it ends.
func TestReadAll_LateCommit(t *testing.T) {
	ctx := t.Context()
	s, pool := newStore(t, postgres.Options{})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	late, err := s.AppendTx(ctx, tx, "order-late", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	early, err := s.Append(ctx, "order-early", events.NoStream(), evs(t, 3, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if early.FirstPosition <= late.LastPosition {
		t.Fatalf("the committed append took positions %d..%d, not above the open one's %d", early.FirstPosition, early.LastPosition, late.LastPosition)
	}

	p := &pager{store: s}
	p.drain(t)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p.drain(t)
	want := []int64{late.FirstPosition, early.FirstPosition, early.FirstPosition + 1, early.LastPosition}
	if !slices.Equal(p.positions, want) {
		t.Errorf("paging forward read positions %v, want %v: the append that committed late is skipped", p.positions, want)
	}
}

// A read from a position beyond the end, which any caller may ask for, finds nothing and
// changes nothing for the readers after it: they are still held below an open append.
func TestReadAll_AfterTheEndTrustsNothing(t *testing.T) {
	ctx := t.Context()
	s, pool := newStore(t, postgres.Options{})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	late, err := s.AppendTx(ctx, tx, "order-late", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "order-early", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if page, err := s.ReadAll(ctx, events.AllQuery{After: 1 << 40, Limit: 10}); err != nil || len(page) != 0 {
		t.Fatalf("a read after the end: %d events, %v; want none", len(page), err)
	}
	page, err := s.ReadAll(ctx, events.AllQuery{After: late.FirstPosition - 1, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 {
		t.Errorf("with the append at %d still open, a read from %d got position %d: the open append would be skipped", late.FirstPosition, late.FirstPosition-1, page[0].GlobalPosition)
	}
}

// A transaction that rolls back holds a reader only while it is open: the positions it took
// are a gap that the reader then passes.
func TestReadAll_RolledBack(t *testing.T) {
	ctx := t.Context()
	s, pool := newStore(t, postgres.Options{})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := s.AppendTx(ctx, tx, "order-gone", events.NoStream(), evs(t, 2, "OrderCreated"), events.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	kept, err := s.Append(ctx, "order-kept", events.NoStream(), evs(t, 3, "OrderCreated"), events.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	p := &pager{store: s}
	p.drain(t)
	if want := []int64{kept.FirstPosition, kept.FirstPosition + 1, kept.LastPosition}; !slices.Equal(p.positions, want) {
		t.Errorf("read positions %v after the rollback, want %v", p.positions, want)
	}
}

// fences counts the fences that transactions hold on the store's events table.
func fences(tb testing.TB, pool *pgxpool.Pool) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(tb.Context(), `select count(*)::int from pg_locks
		where locktype = 'advisory' and objsubid = 2 and classid = 'annals_events'::regclass::oid`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestStore_Head(t *testing.T) {
	ctx := t.Context()
	head := func(t *testing.T, s *postgres.Store) int64 {
		t.Helper()
		h, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// A transaction holds one fence however often it appends, the head stays below its
	// first position until it ends, and then moves to the end.
	t.Run("OpenTransaction", func(t *testing.T) {
		s, pool := newStore(t, postgres.Options{})
		before, err := s.Append(ctx, "order-before", events.NoStream(), evs(t, 2, "OrderCreated"), events.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var first events.AppendResult
		for i := range 3 {
			res, err := s.AppendTx(ctx, tx, fmt.Sprintf("order-open%d", i), events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = res
			}
		}
		after, err := s.Append(ctx, "order-after", events.NoStream(), evs(t, 2, "OrderCreated"), events.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := fences(t, pool); n != 1 {
			t.Errorf("a transaction that appended 3 times holds %d fences, want 1", n)
		}
		if h := head(t, s); h < before.LastPosition || h >= first.FirstPosition {
			t.Errorf("head %d while the transaction that took %d is open, want %d..%d", h, first.FirstPosition, before.LastPosition, first.FirstPosition-1)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := fences(t, pool); n != 0 {
			t.Errorf("%d fences after the commit", n)
		}
		if h := head(t, s); h != after.LastPosition {
			t.Errorf("head %d once nothing is open, want the last position %d", h, after.LastPosition)
		}
	})

	// A savepoint that rolls back takes its fence with it, and the next append in the
	// transaction takes one again.
	t.Run("Savepoint", func(t *testing.T) {
		s, pool := newStore(t, postgres.Options{})
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		sp, err := tx.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendTx(ctx, sp, "order-sp", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := sp.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if n := fences(t, pool); n != 0 {
			t.Errorf("%d fences after the savepoint rolled back, want 0", n)
		}
		kept, err := s.AppendTx(ctx, tx, "order-kept", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := fences(t, pool); n != 1 {
			t.Errorf("%d fences after an append in the transaction, want 1", n)
		}
		if h := head(t, s); h >= kept.FirstPosition {
			t.Errorf("head %d while position %d is open", h, kept.FirstPosition)
		}
	})

	// Floors are kept in 32 bits: past 2^32 positions the head still stops below an open
	// transaction, and pages still read on.
	t.Run("Past32Bits", func(t *testing.T) {
		s, pool := newStore(t, postgres.Options{})
		if _, err := pool.Exec(ctx, `alter table annals_events alter column global_position restart with 4294967290`); err != nil {
			t.Fatal(err)
		}
		for start := range 8 {
			if _, err := pool.Exec(ctx, `truncate annals_events, annals_outbox, annals_streams`); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, "order-base", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			open, err := s.AppendTx(ctx, tx, "order-open", events.NoStream(), evs(t, 1, "OrderCreated"), events.AppendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, "order-later", events.NoStream(), evs(t, 3, "OrderCreated"), events.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			if h := head(t, s); h != open.FirstPosition-1 {
				t.Errorf("start %d: head %d while position %d is open, want %d", start, h, open.FirstPosition, open.FirstPosition-1)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			p := &pager{store: s, after: open.FirstPosition - 2}
			p.drain(t)
			if len(p.positions) != 5 || p.positions[1] != open.FirstPosition {
				t.Errorf("start %d: read %v after the commit, want 5 positions from %d", start, p.positions, open.FirstPosition-1)
			}
		}
	})
}

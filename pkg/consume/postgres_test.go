package consume_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

func TestInbox_QueueClaimNew(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	in := consume.Inbox{Group: "claims"}
	ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	claim := func(ids []uuid.UUID) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			in.QueueClaimNew(b, ids)
			return tx.SendBatch(ctx, b).Close()
		})
	}
	if err := claim(ids); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	// One of them again, with a new one: the whole claim fails and records nothing.
	fresh := uuid.Must(uuid.NewV7())
	err := claim([]uuid.UUID{fresh, ids[1]})
	if !consume.IsClaimedBefore(err) {
		t.Fatalf("claim of an event recorded before: %v, want a failure IsClaimedBefore recognises", err)
	}
	if consume.IsClaimedBefore(context.Canceled) {
		t.Error("IsClaimedBefore(context.Canceled) is true")
	}
	// Another group claims the same events freely.
	other := consume.Inbox{Group: "others"}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		other.QueueClaimNew(b, ids)
		return tx.SendBatch(ctx, b).Close()
	}); err != nil {
		t.Fatalf("claim by another group: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = 'claims'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("the group has %d events recorded, want 2", n)
	}
}

// TestPostgresUnit_WhoseFailure: the database's own failure comes back Unavailable (the
// runtime waits), a failure of the work does not (the runtime retries it and then
// dead-letters), even when it is an end of file or a deadline of something the handler called.
func TestPostgresUnit_WhoseFailure(t *testing.T) {
	ctx := context.Background()
	unit := consume.PostgresUnit(testenv.Pool(t))
	for _, work := range []error{
		fmt.Errorf("decode: %w", io.ErrUnexpectedEOF),
		fmt.Errorf("call the pricing service: %w", context.DeadlineExceeded),
		errors.New("boom"),
	} {
		got := unit(ctx, func(context.Context) error { return work })
		if consume.IsUnavailable(got) || !errors.Is(got, work) {
			t.Errorf("work failing with %v: got %v (unavailable %v), want the work's error, not unavailable", work, got, consume.IsUnavailable(got))
		}
	}
	got := unit(ctx, func(ctx context.Context) error {
		_, err := consume.Tx(ctx).Exec(ctx, `select pg_terminate_backend(pg_backend_pid())`)
		return err
	})
	if !consume.IsUnavailable(got) {
		t.Errorf("a connection the server ended: got %v, want it marked unavailable", got)
	}
}

func TestInbox_QueueClaim(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	in := consume.Inbox{Group: "queued"}
	id := uuid.Must(uuid.NewV7())
	for i, want := range []bool{true, false} {
		fresh := !want
		err := consume.PostgresUnit(pool)(ctx, func(ctx context.Context) error {
			b := &pgx.Batch{}
			in.QueueClaim(b, id, &fresh)
			return consume.Tx(ctx).SendBatch(ctx, b).Close()
		})
		if err != nil || fresh != want {
			t.Errorf("claim %d: fresh %v, %v; want %v", i+1, fresh, err, want)
		}
	}
}

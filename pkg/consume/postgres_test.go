package consume_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

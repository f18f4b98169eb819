package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// A record that the writer stored before appends recorded their keys themselves, its response
// body as it sent it, reads back as the append it describes.
func TestStore_LookupIdempotency_WriterRecord(t *testing.T) {
	s, pool := newStore(t, postgres.Options{})
	ctx := context.Background()
	body := `{"id":"0190a4b2-7f3c-7a00-8000-000000000001","stream_id":"user-0190a4b2-7f3c-7a00-8000-000000000001","version":3,"position":42}`
	if _, err := pool.Exec(ctx, `insert into annals_idempotency (key, request_hash, status, response) values ('old', '\x0102', 200, $1)`, []byte(body)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LookupIdempotency(ctx, "old")
	if err != nil || !ok {
		t.Fatalf("lookup: %v, %v", ok, err)
	}
	if got.Status != 200 || !bytes.Equal(got.RequestHash, []byte{1, 2}) || got.RecordedAt.IsZero() ||
		got.Result.StreamID != "user-0190a4b2-7f3c-7a00-8000-000000000001" || got.Result.LastVersion != 3 || got.Result.LastPosition != 42 {
		t.Errorf("read back %+v", got)
	}
}

// An append with a key inside the caller's transaction records the key there too: both roll
// back together.
func TestStore_AppendTx_Idempotency(t *testing.T) {
	s, pool := newStore(t, postgres.Options{})
	ctx := context.Background()
	key := &events.IdempotencyKey{Key: "tx", RequestHash: []byte{3}, Status: 201}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(ctx, tx, "user-tx", events.NoStream(), []events.Event{ev(t, "UserCreated", map[string]string{})}, events.AppendOptions{Idempotency: key}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LookupIdempotency(ctx, "tx"); ok || err != nil {
		t.Errorf("a rolled-back append left its key: %v, %v", ok, err)
	}
	if _, err := s.StreamInfo(ctx, "user-tx"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a rolled-back append left its stream: %v", err)
	}
}

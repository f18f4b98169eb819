package pgkeys_test

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/pgkeys"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
)

func newStore(t *testing.T) *pgkeys.Store {
	t.Helper()
	pool, _ := testenv.SchemaPool(t)
	if _, err := pgkeys.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	return pgkeys.New(pool)
}

func TestStore(t *testing.T) {
	shredtest.TestKeyStore(t, func(t *testing.T) shred.KeyStore { return newStore(t) })
}

func TestStore_Destroy(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.SchemaPool(t)
	if _, err := pgkeys.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	r := shred.NewKeyring(shredtest.NewKEK(t), pgkeys.New(pool), shred.Options{})
	if _, err := r.Encrypt(ctx, "u1", "Ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Encrypt(ctx, "u2", "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EraseWith(ctx, shred.Erasure{Subject: "u1", By: "dpo", Reason: "art. 17"}); err != nil {
		t.Fatal(err)
	}
	var keys, tombstones int
	var by string
	if err := pool.QueryRow(ctx, `select count(wrapped_key), count(erased_at), max(erased_by) from annals_subject_keys`).Scan(&keys, &tombstones, &by); err != nil {
		t.Fatal(err)
	}
	if keys != 1 || tombstones != 1 || by != "dpo" {
		t.Errorf("keys, tombstones, by = %d, %d, %q; want 1, 1, dpo: u1's key gone, its tombstone kept", keys, tombstones, by)
	}
}

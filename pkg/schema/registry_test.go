package schema_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/schema"
)

// migrated returns a pool on a fresh schema with the event store's migrations applied.
func migrated(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, _ := testenv.SchemaPool(tb)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return pool
}

func TestCatalog_Register(t *testing.T) {
	ctx := context.Background()
	c := catalog(t)

	t.Run("OK", func(t *testing.T) {
		pool := migrated(t)
		if rows, err := schema.List(ctx, pool); err != nil || len(rows) != 0 {
			t.Fatalf("List before Register = %v, %v; want none", rows, err)
		}
		if err := c.Register(ctx, pool); err != nil {
			t.Fatalf("Register: %v", err)
		}
		first, err := schema.List(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		infos := c.Schemas()
		if len(first) != len(infos) {
			t.Fatalf("%d rows, want %d", len(first), len(infos))
		}
		negative := 0
		for i, r := range first {
			in := infos[i]
			if r.Fingerprint != in.Fingerprint || r.FingerprintHex != in.FingerprintHex || r.Type != in.Type ||
				r.Version != in.Version || r.Schema != in.Schema || r.RegisteredAt.IsZero() {
				t.Errorf("row %+v,\n want %+v", r, in)
			}
			got, err := schema.Lookup(ctx, pool, in.Fingerprint)
			if err != nil || got != r {
				t.Errorf("Lookup(%s) = %+v, %v; want %+v", in.FingerprintHex, got, err, r)
			}
			if int64(in.Fingerprint) < 0 {
				negative++
			}
		}
		// Fingerprints with the top bit set are stored as negative bigints.
		var stored int
		if err := pool.QueryRow(ctx, `select count(*) from annals_schemas where fingerprint < 0`).Scan(&stored); err != nil || stored != negative {
			t.Errorf("negative fingerprints stored = %d, %v; want %d", stored, err, negative)
		}
		if negative == 0 || negative == len(infos) {
			t.Logf("all fingerprints have the same top bit; the int64 conversion is checked one way only")
		}

		t.Run("Twice", func(t *testing.T) {
			if err := c.Register(ctx, pool); err != nil {
				t.Fatalf("second Register: %v", err)
			}
			again, err := schema.List(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != len(first) {
				t.Fatalf("%d rows after the second Register, want %d", len(again), len(first))
			}
			for i := range again {
				if again[i] != first[i] {
					t.Errorf("row changed: %+v -> %+v", first[i], again[i])
				}
			}
		})
		t.Run("ErrUnknownFingerprint", func(t *testing.T) {
			_, err := schema.Lookup(ctx, pool, 42)
			if !errors.Is(err, schema.ErrUnknownFingerprint) {
				t.Errorf("err = %v, want ErrUnknownFingerprint", err)
			}
		})
	})

	t.Run("Concurrent", func(t *testing.T) {
		pool := migrated(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = c.Register(ctx, pool) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("Register: %v", err)
			}
		}
		if rows, err := schema.List(ctx, pool); err != nil || len(rows) != len(c.Schemas()) {
			t.Errorf("%d rows, %v; want %d", len(rows), err, len(c.Schemas()))
		}
	})

	created, _ := c.Current("UserCreated")
	for _, tc := range []struct {
		name    string
		row     []any
		wantErr bool
	}{
		{"ErrConflict/FingerprintAsOtherType", []any{int64(created.Fingerprint), "UserRenamed", 1, created.Schema}, true},
		{"ErrConflict/FingerprintAsOtherVersion", []any{int64(created.Fingerprint), "UserCreated", 2, created.Schema}, true},
		{"ErrConflict/VersionWithOtherFingerprint", []any{int64(12345), "UserCreated", 1, `"string"`}, true},
		{"NewerVersion", []any{int64(12345), "UserCreated", 9, `"string"`}, false},
		{"OtherType", []any{int64(12345), "Unrelated", 1, `"string"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := migrated(t)
			if _, err := pool.Exec(ctx, `insert into annals_schemas (fingerprint, type, version, schema) values ($1, $2, $3, $4)`, tc.row...); err != nil {
				t.Fatal(err)
			}
			err := c.Register(ctx, pool)
			if got := errors.Is(err, schema.ErrConflict); got != tc.wantErr {
				t.Errorf("Register = %v; want ErrConflict: %v", err, tc.wantErr)
			}
		})
	}

	t.Run("NoTable", func(t *testing.T) {
		pool, _ := testenv.SchemaPool(t)
		if err := c.Register(ctx, pool); err == nil {
			t.Error("Register without the migrations succeeded")
		}
	})
}

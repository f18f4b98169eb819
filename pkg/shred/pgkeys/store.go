package pgkeys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/shred"
)

// Store is the PostgreSQL KeyStore. Its tables come from Migrate.
type Store struct {
	pool *pgxpool.Pool
}

var _ shred.KeyStore = (*Store)(nil)

// New returns the key store of the pool's database.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Create inserts k unless its subject has a row; a subject's row, new or old, is returned.
// Racing creators all read the row that won: the losing insert waits for the winner's commit
// and then reads it in a statement of its own.
func (s *Store) Create(ctx context.Context, k shred.WrappedKey) (shred.WrappedKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	tag, err := s.pool.Exec(ctx, `insert into annals_subject_keys (subject, kek_id, wrapped_key, created_at)
		values ($1, $2, $3, $4) on conflict (subject) do nothing`, k.Subject, k.KEKID, k.Wrapped, k.CreatedAt)
	if err != nil {
		return shred.WrappedKey{}, fmt.Errorf("create key of %s: %w", k.Subject, err)
	}
	if tag.RowsAffected() == 1 {
		return k, nil
	}
	got, err := s.Get(ctx, k.Subject)
	if errors.Is(err, shred.ErrNoKey) { // never: a row, once there, is never deleted
		return shred.WrappedKey{}, fmt.Errorf("create key of %s: the row vanished", k.Subject)
	}
	return got, err
}

// Get returns the subject's key, ErrNoKey or ErrErased.
func (s *Store) Get(ctx context.Context, subject string) (shred.WrappedKey, error) {
	k := shred.WrappedKey{Subject: subject}
	var kekID *string
	var erasedAt *time.Time
	err := s.pool.QueryRow(ctx, `select kek_id, wrapped_key, created_at, erased_at
		from annals_subject_keys where subject = $1`, subject).Scan(&kekID, &k.Wrapped, &k.CreatedAt, &erasedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return shred.WrappedKey{}, shred.ErrNoKey
	case err != nil:
		return shred.WrappedKey{}, fmt.Errorf("key of %s: %w", subject, err)
	case erasedAt != nil:
		return shred.WrappedKey{}, shred.ErrErased
	}
	if kekID != nil {
		k.KEKID = *kekID
	}
	return k, nil
}

// Destroy nulls the subject's wrapped key and records the tombstone, or writes a tombstone
// for a subject without a row; a subject erased already keeps its first tombstone.
func (s *Store) Destroy(ctx context.Context, e shred.Erasure) (shred.Erasure, error) {
	if e.ErasedAt.IsZero() {
		e.ErasedAt = time.Now().UTC()
	}
	got := shred.Erasure{Subject: e.Subject}
	err := s.pool.QueryRow(ctx, `insert into annals_subject_keys (subject, created_at, erased_at, erased_by, erase_reason)
		values ($1, $2, $2, $3, $4)
		on conflict (subject) do update set wrapped_key = null, erased_at = excluded.erased_at,
			erased_by = excluded.erased_by, erase_reason = excluded.erase_reason
		where annals_subject_keys.erased_at is null
		returning erased_at, erased_by, erase_reason`, e.Subject, e.ErasedAt, e.By, e.Reason).
		Scan(&got.ErasedAt, &got.By, &got.Reason)
	if errors.Is(err, pgx.ErrNoRows) { // erased already
		err = s.pool.QueryRow(ctx, `select erased_at, erased_by, erase_reason from annals_subject_keys
			where subject = $1`, e.Subject).Scan(&got.ErasedAt, &got.By, &got.Reason)
	}
	if err != nil {
		return shred.Erasure{}, fmt.Errorf("destroy key of %s: %w", e.Subject, err)
	}
	got.ErasedAt = got.ErasedAt.UTC()
	return got, nil
}

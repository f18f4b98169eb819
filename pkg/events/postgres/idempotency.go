package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// IdempotentResponse is the stored outcome of a command sent with an idempotency key.
type IdempotentResponse struct {
	Key         string
	RequestHash []byte // identifies the request the key was first used with
	Status      int
	Body        json.RawMessage
}

// ErrIdempotencyKeyTaken: another request with the same key committed first.
var ErrIdempotencyKeyTaken = errors.New("idempotency key already used")

// LookupIdempotency returns the stored response for key, if any.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (IdempotentResponse, bool, error) {
	r := IdempotentResponse{Key: key}
	var body []byte
	err := s.pool.QueryRow(ctx, `select request_hash, status, response from annals_idempotency where key = $1`, key).
		Scan(&r.RequestHash, &r.Status, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("idempotency key: %w", err)
	}
	r.Body = body
	return r, true, nil
}

// SaveIdempotencyTx stores a response in the transaction that appended the command's events,
// so that the key is recorded exactly when the events are. A key that a concurrent request
// recorded first gives ErrIdempotencyKeyTaken (and aborts the transaction).
func (s *Store) SaveIdempotencyTx(ctx context.Context, tx pgx.Tx, r IdempotentResponse) error {
	_, err := tx.Exec(ctx, `insert into annals_idempotency (key, request_hash, status, response) values ($1, $2, $3, $4)`,
		r.Key, r.RequestHash, r.Status, []byte(r.Body))
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return ErrIdempotencyKeyTaken
	}
	if err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotency deletes idempotency keys stored more than ttl ago, and returns how many.
// A request retried after that is treated as new.
func (s *Store) PruneIdempotency(ctx context.Context, ttl time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `delete from annals_idempotency where created_at < clock_timestamp() - $1::interval`, ttl)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// InTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
// Once the transaction has committed it calls Wake, so that a relay woken by
// Options.OnAppend finds what fn appended with AppendTx.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, s.pool, fn); err != nil {
		return err
	}
	s.Wake()
	return nil
}

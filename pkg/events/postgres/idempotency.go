package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/pkg/events"
)

// ErrIdempotencyKeyTaken is events.ErrIdempotencyKeyTaken: an append with the same key was
// recorded first.
var ErrIdempotencyKeyTaken = events.ErrIdempotencyKeyTaken

var _ events.IdempotencyStore = (*Store)(nil)

// LookupIdempotency returns what was recorded under key. The response column holds the
// append's result as JSON; rows written before it did hold the writer's response body, whose
// stream_id, version and position read back the same.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (events.IdempotentAppend, bool, error) {
	r := events.IdempotentAppend{Key: key}
	var body []byte
	err := s.pool.QueryRow(ctx, `select request_hash, status, response, created_at from annals_idempotency where key = $1`, key).
		Scan(&r.RequestHash, &r.Status, &body, &r.RecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("idempotency key: %w", err)
	}
	if err := json.Unmarshal(body, &r.Result); err != nil {
		return r, false, fmt.Errorf("idempotency key: recorded result: %w", err)
	}
	r.RecordedAt = r.RecordedAt.UTC()
	return r, true, nil
}

// appendIdempotent appends in tx and records opts.Idempotency with it. The key goes in first:
// a concurrent append with the same key waits on its row and, once the first has committed,
// fails with ErrIdempotencyKeyTaken before it has taken a version or a position. The result
// is written to the key's row once the append has one. A refused key aborts tx.
func (s *Store) appendIdempotent(ctx context.Context, tx pgx.Tx, streamID string, expected events.ExpectedVersion, evs []events.Event, opts events.AppendOptions) (events.AppendResult, error) {
	k := opts.Idempotency
	res := events.AppendResult{StreamID: streamID}
	if k.Key == "" {
		return res, fmt.Errorf("%w: append %s: empty idempotency key", events.ErrInvalid, streamID)
	}
	_, err := tx.Exec(ctx, `insert into annals_idempotency (key, request_hash, status, response) values ($1, $2, $3, '{}')`,
		k.Key, k.RequestHash, k.Status)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return res, fmt.Errorf("append %s: %w", streamID, ErrIdempotencyKeyTaken)
	}
	if err != nil {
		return res, fmt.Errorf("append %s: idempotency key: %w", streamID, err)
	}
	if res, err = s.appendOn(ctx, tx, streamID, expected, evs, opts); err != nil {
		return res, err
	}
	body, err := json.Marshal(res)
	if err != nil {
		return res, err
	}
	if _, err := tx.Exec(ctx, `update annals_idempotency set response = $2 where key = $1`, k.Key, body); err != nil {
		return res, fmt.Errorf("append %s: idempotency key: %w", streamID, err)
	}
	return res, nil
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

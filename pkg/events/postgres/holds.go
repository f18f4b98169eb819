package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// The operator's side of held streams: list them, release them so that the relay tries their
// held append again, or give up on a held append deliberately. Each runs on its own
// transaction of the pool, beside a running relay.

var _ outbox.Operator = (*Outbox)(nil)

// holdsSQL lists the holds, oldest first, with the number of their stream's appends in the
// outbox.
const holdsSQL = `select h.stream_id, h.category, h.first_version, h.last_version, h.reason, h.held_at,
			(select count(*) from annals_outbox o where o.stream_id = h.stream_id)
		from annals_outbox_holds h
		order by h.held_at, h.stream_id`

// Holds lists the held streams, oldest hold first.
func (o *Outbox) Holds(ctx context.Context) ([]outbox.Hold, error) {
	rows, err := o.pool.Query(ctx, holdsSQL)
	if err != nil {
		return nil, fmt.Errorf("outbox holds: %w", err)
	}
	holds, err := pgx.CollectRows(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("outbox holds: %w", err)
	}
	return holds, nil
}

// releaseSQL deletes the holds of the streams $1 (all when null) and returns them; unholdSQL
// then returns their rows to the flow. The delete locks each hold first, so a relay marking
// rows behind it either finished before (and its marks are undone here) or finds it gone.
const (
	releaseSQL = `delete from annals_outbox_holds h where $1::text[] is null or h.stream_id = any($1)
		returning h.stream_id, h.category, h.first_version, h.last_version, h.reason, h.held_at,
			(select count(*) from annals_outbox o where o.stream_id = h.stream_id)`
	unholdSQL = `update annals_outbox set held = false where held and stream_id = any($1)`
)

// Retry releases the hold of a stream: the relay reads its held append again, and publishes it
// with the appends behind it if it can now (the missing schema deployed, the topic's
// max.message.bytes raised), or holds the stream again with the new reason. It returns the
// hold it released, or an error wrapping outbox.ErrNotHeld.
func (o *Outbox) Retry(ctx context.Context, streamID string) (outbox.Hold, error) {
	holds, err := o.release(ctx, []string{streamID})
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, err)
	}
	if len(holds) == 0 {
		return outbox.Hold{}, fmt.Errorf("retry %s: %w", streamID, outbox.ErrNotHeld)
	}
	return holds[0], nil
}

// RetryAll releases every hold, as Retry does, and returns those it released.
func (o *Outbox) RetryAll(ctx context.Context) ([]outbox.Hold, error) {
	holds, err := o.release(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("retry all: %w", err)
	}
	return holds, nil
}

func (o *Outbox) release(ctx context.Context, streams []string) ([]outbox.Hold, error) {
	var holds []outbox.Hold
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, releaseSQL, streams)
		if err != nil {
			return err
		}
		if holds, err = pgx.CollectRows(rows, scanHold); err != nil {
			return err
		}
		released := make([]string, len(holds))
		for i, h := range holds {
			released[i] = h.StreamID
		}
		_, err = tx.Exec(ctx, unholdSQL, released)
		return err
	})
	return holds, err
}

func scanHold(r pgx.CollectableRow) (outbox.Hold, error) {
	var h outbox.Hold
	err := r.Scan(&h.StreamID, &h.Category, &h.FirstVersion, &h.LastVersion, &h.Reason, &h.HeldAt, &h.Waiting)
	h.HeldAt = h.HeldAt.UTC()
	return h, err
}

// skipSQL moves the held append ($1 stream, $2 first version) to annals_outbox_dead with the
// hold's reason, who skipped it ($3) and why ($4), and counts its events in annals_counters,
// as a published append's are, so that the statistics count it once.
const skipSQL = `with d as (
			delete from annals_outbox o where o.stream_id = $1 and o.first_version = $2
			returning o.stream_id, o.first_version, o.last_version, o.category, o.types, o.created_at
		),
		dead as (
			insert into annals_outbox_dead (stream_id, first_version, last_version, category, types, error, created_at, skipped_by, skip_reason)
			select d.stream_id, d.first_version, d.last_version, d.category, d.types, $5, d.created_at, $3, $4 from d
		)
		insert into annals_counters (name, value)
		select name, count(*) from (
			select 'type:' || t as name from d, unnest(d.types) as t
			union all
			select 'streams' from d where d.first_version = 0
		) c group by name
		on conflict (name) do update set value = annals_counters.value + excluded.value`

// ErrSkipUnexplained: a skip needs who decides it and why.
var ErrSkipUnexplained = errors.New("a skip needs who decides it and why")

// Skip gives up on a stream's held append, which must start at firstVersion: it is moved to
// annals_outbox_dead with the hold's reason and who skipped it and why, and the appends behind
// it return to the flow and are published. Consumers that check stream versions will see the
// gap. It returns the hold it ended, or an error wrapping outbox.ErrNotHeld when the stream is
// not held at that version.
func (o *Outbox) Skip(ctx context.Context, streamID string, firstVersion int64, by, why string) (outbox.Hold, error) {
	if by == "" || why == "" {
		return outbox.Hold{}, fmt.Errorf("skip %s: %w", streamID, ErrSkipUnexplained)
	}
	var h outbox.Hold
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, releaseSQL, []string{streamID})
		if err != nil {
			return err
		}
		holds, err := pgx.CollectRows(rows, scanHold)
		if err != nil {
			return err
		}
		if len(holds) == 0 {
			return outbox.ErrNotHeld
		}
		if h = holds[0]; h.FirstVersion != firstVersion {
			return fmt.Errorf("%w at version %d: it is held at version %d", outbox.ErrNotHeld, firstVersion, h.FirstVersion)
		}
		if _, err := tx.Exec(ctx, skipSQL, streamID, firstVersion, by, why, h.Reason); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, unholdSQL, []string{streamID})
		return err
	})
	if err != nil {
		return outbox.Hold{}, fmt.Errorf("skip %s@%d: %w", streamID, firstVersion, err)
	}
	return h, nil
}

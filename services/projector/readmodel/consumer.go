package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// Consumer is the projector's consumer: base (the group's settings, see
// internal/wiring.ConsumerConfig; the group is Group unless base names another) with each
// lane's share of a batch applied in one transaction (HandleBatch), the inbox recording every
// applied event in that transaction, streams blocked behind a dead letter kept in PostgreSQL,
// and the handler's time per event type measured on the one-by-one path.
func (p *Projection) Consumer(base consume.Config) (*consume.Consumer, error) {
	if base.Group == "" {
		base.Group = Group
	}
	base.Unit = p.metrics.unit(consume.PostgresUnit(p.pool))
	base.Blocks = consume.PostgresBlocks(p.pool)
	if base.Metrics == nil {
		base.Metrics = consume.NewMetrics(nil)
	}
	base.Middleware = append([]consume.Middleware{
		consume.Timing(base.Metrics, base.Group),
		consume.Inbox{Group: Group}.Middleware(),
	}, base.Middleware...)
	return consume.New(base, p)
}

// errNotClean sends a lane's share of a batch down the one-by-one path, which sorts out what
// HandleBatch does not decide: events applied before, gaps, refused events.
var errNotClean = errors.New("projector: the batch does not apply cleanly; applying its events one by one")

// HandleBatch applies a lane's share of a batch in the transaction of the PostgresUnit it runs
// in, in three round trips whatever its size: one statement records every event in the inbox,
// one reads the live generation, and one pipeline applies the events in multi-row rounds (as a
// rebuild does). When any event was recorded before or does not apply cleanly, it fails with
// nothing applied, and the runtime applies the events one by one through Handle.
func (p *Projection) HandleBatch(ctx context.Context, ms []*consume.Message) error {
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(errors.New("projector: a batch runs outside a PostgreSQL unit"))
	}
	ids := make([]uuid.UUID, len(ms))
	evs := make([]events.Envelope, len(ms))
	for i, m := range ms {
		ids[i], evs[i] = m.Event.EventID, m.Event
	}
	claimed, err := consume.Inbox{Group: Group}.ClaimAll(ctx, tx, ids)
	if err != nil {
		return err
	}
	if claimed != len(ms) {
		return errNotClean
	}
	g, err := lockedGeneration(ctx, tx)
	if err != nil {
		return err
	}
	stopped := map[string]string{}
	steps, b, rows := queueRounds(g, evs, stopped)
	if len(stopped) > 0 {
		return errNotClean
	}
	if len(steps) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	for _, want := range rows {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("projector: %w", err)
		}
		if tag.RowsAffected() != want {
			_ = br.Close()
			return errNotClean
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	for _, m := range ms {
		noteApplied(ctx, m.Event.RecordedAt)
	}
	return nil
}

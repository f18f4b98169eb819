package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// Consumer is the projector's consumer: base (the group's settings, see
// internal/wiring.ConsumerConfig; the group is Group unless base names another) with each
// lane's share of a batch applied in one transaction (HandleBatch), the inbox recording every
// applied event in that transaction under the group's name, streams blocked behind a dead
// letter kept in PostgreSQL, and the handler's time per event type measured on the one-by-one
// path. On that path an event is recorded in the inbox in the round trip that takes the
// switch lock and reads the generation (inboxed.Handle), rather than by the inbox's
// middleware in a round trip of its own; so base's own middleware runs before that record,
// and sees an event delivered again as well (a filter of it keeps the events it drops out of
// the inbox). Call it once, before the Projection handles anything.
func (p *Projection) Consumer(base consume.Config) (*consume.Consumer, error) {
	cfg, h := p.wire(base)
	return consume.New(cfg, h)
}

// wire is base with the projector's unit of work, blocks and middleware, and the handler the
// consumer runs; it sets the group of the inbox.
func (p *Projection) wire(base consume.Config) (consume.Config, consume.Handler) {
	if base.Group == "" {
		base.Group = Group
	}
	p.inbox = consume.Inbox{Group: base.Group}
	base.Unit = p.unit(consume.PostgresUnit(p.pool))
	base.Blocks = consume.PostgresBlocks(p.pool)
	if base.Metrics == nil {
		base.Metrics = consume.NewMetrics(nil)
	}
	base.Middleware = append([]consume.Middleware{consume.Timing(base.Metrics, base.Group)}, base.Middleware...)
	return base, inboxed{p}
}

// inboxed is the Projection as its Consumer runs it: HandleBatch is the Projection's, and
// Handle records the event in the inbox itself, as the inbox's middleware would, skipping one
// recorded before.
type inboxed struct{ *Projection }

var _ consume.BatchHandler = inboxed{}

// Handle records the message's event in the inbox and applies it, in the transaction of the
// PostgresUnit it runs in: the record goes in the round trip that takes the switch lock and
// reads the generation (after them, as in HandleBatch), and the event's statement follows
// unless the inbox had the event. An event the projector does not model, or cannot plan, is
// recorded alone first, so that one recorded before is skipped whatever it holds.
func (h inboxed) Handle(ctx context.Context, m *consume.Message) error {
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(fmt.Errorf("inbox: %s runs outside a PostgreSQL unit", m))
	}
	ctx, span := tracer.Start(ctx, "apply "+m.Event.Type)
	fresh, err := h.claimAndApply(ctx, tx, m.Event)
	endSpan(span, err)
	if err != nil || !fresh {
		return err
	}
	noteApplied(ctx, m.Event.StreamID, m.Event.RecordedAt)
	return nil
}

// claimAndApply records e in the inbox and applies it as Apply does; fresh is false when the
// inbox had it, and nothing was applied.
func (h inboxed) claimAndApply(ctx context.Context, tx pgx.Tx, e events.Envelope) (fresh bool, err error) {
	s, ok, err := h.plan(ctx, e)
	if err != nil || !ok {
		fresh, cerr := h.inbox.Claim(ctx, tx, e.EventID)
		if cerr != nil || !fresh {
			return false, cerr
		}
		return true, err
	}
	var g *generation
	b := &pgx.Batch{}
	queueLockedGeneration(b, &g)
	h.inbox.QueueClaim(b, e.EventID, &fresh)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, err
	}
	if !fresh {
		return false, nil
	}
	_, err = s.run(ctx, tx, g)
	return true, err
}

// errNotClean sends a lane's share of a batch down the one-by-one path, which sorts out what
// HandleBatch does not decide: events applied before, gaps, refused events.
var errNotClean = errors.New("projector: the batch does not apply cleanly; applying its events one by one")

// HandleBatch applies a lane's share of a batch in the transaction of the PostgresUnit it runs
// in, in three round trips whatever its size: one records every event in the inbox and reads
// the live generation, one reads the rows of the events' streams, and one writes each row
// once, as all its events in the batch change it (fold.go). When any event was recorded before
// or does not apply cleanly, it fails with nothing applied (the transaction may be aborted),
// and the runtime applies the events one by one through Handle.
func (p *Projection) HandleBatch(ctx context.Context, ms []*consume.Message) (err error) {
	ctx, span := tracer.Start(ctx, "apply batch", trace.WithLinks(consume.Links(ms)...),
		trace.WithAttributes(attribute.Int("annals.events", len(ms))))
	defer func() { endSpan(span, err) }()
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(errors.New("projector: a batch runs outside a PostgreSQL unit"))
	}
	ids := make([]uuid.UUID, len(ms))
	var f batchFold
	for i, m := range ms {
		ids[i] = m.Event.EventID
		s, ok, err := p.plan(ctx, m.Event)
		if err != nil {
			return errNotClean // Handle refuses it, or tries it again
		}
		if ok && !f.add(s) {
			return errNotClean
		}
	}
	var g *generation
	b := &pgx.Batch{}
	queueLockedGeneration(b, &g)
	p.inbox.QueueClaimNew(b, ids)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if consume.IsClaimedBefore(err) {
			return errNotClean
		}
		return fmt.Errorf("projector: %w", err)
	}
	if err := foldBatch(ctx, tx, g, &f); err != nil {
		if errors.Is(err, errNotClean) {
			return err
		}
		return fmt.Errorf("projector: %w", err)
	}
	for _, m := range ms {
		noteApplied(ctx, m.Event.StreamID, m.Event.RecordedAt)
	}
	return nil
}

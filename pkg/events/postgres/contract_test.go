package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/eventstest"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

// TestStore_Contract runs the contract of events.Store, each part on a fresh schema.
func TestStore_Contract(t *testing.T) {
	eventstest.TestStore(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, postgres.Options{})
		return s
	})
}

func TestStore_ContractMaxEventsPerStream(t *testing.T) {
	eventstest.TestMaxEventsPerStream(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, postgres.Options{MaxEventsPerStream: max})
		return s
	})
}

func TestStore_ContractMaxEventBytes(t *testing.T) {
	eventstest.TestMaxEventBytes(t, func(t *testing.T, max int) events.Store {
		s, _ := newStore(t, postgres.Options{MaxEventBytes: max})
		return s
	})
}

func TestStore_ContractIdempotency(t *testing.T) {
	eventstest.TestIdempotency(t, func(t *testing.T) events.Store {
		s, _ := newStore(t, postgres.Options{})
		return s
	})
}

// TestOutbox_Contract runs the contract of an outbox through the relay, each part on a fresh
// schema and topics of its own.
func TestOutbox_Contract(t *testing.T) {
	relaytest.Run(t, relaytest.Harness{Brokers: testenv.KafkaBrokers(t), New: outboxSubject})
}

// outboxSubject is a fresh store's outbox under test: a late append is an open transaction,
// and skipped appends are read from annals_outbox_dead.
func outboxSubject(t *testing.T) relaytest.Subject {
	s, pool := newStore(t, postgres.Options{})
	return relaytest.Subject{
		Store: s, Outbox: s.Outbox(), Operator: s.Outbox(),
		LateAppend: func(ctx context.Context, streamID string, evs []events.Event) (func() error, error) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { tx.Rollback(context.Background()) })
			if _, err := s.AppendTx(ctx, tx, streamID, events.Any(), evs, events.AppendOptions{}); err != nil {
				return nil, err
			}
			return func() error { return tx.Commit(context.WithoutCancel(ctx)) }, nil
		},
		Skipped: func(ctx context.Context) ([]relaytest.SkippedAppend, error) {
			rows, err := pool.Query(ctx, `select stream_id, first_version, error, skipped_by, skip_reason from annals_outbox_dead order by stream_id, first_version`)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (relaytest.SkippedAppend, error) {
				var a relaytest.SkippedAppend
				err := r.Scan(&a.StreamID, &a.FirstVersion, &a.Reason, &a.By, &a.Why)
				return a, err
			})
		},
	}
}

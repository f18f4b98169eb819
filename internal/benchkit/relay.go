package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"

	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/relay"
)

// Backlog is an outbox as a drain watches it: whether it is empty, and how many appends wait
// in it (postgres.Outbox, and the outboxes of the other stores).
type Backlog interface {
	Empty(ctx context.Context) (bool, error)
	Waiting(ctx context.Context) (int64, error)
}

// RelayDrain runs r, a relay started cold on pool's filled outbox, until the outbox is empty,
// that is until the broker has acknowledged every record and the relay has deleted its row,
// then stops it. It returns the time from the relay's start to the empty outbox. The caller
// closes r.
func RelayDrain(ctx context.Context, pool *pgxpool.Pool, r *relay.Relay, within time.Duration, progress io.Writer) (time.Duration, error) {
	return RelayDrainOf(ctx, postgres.NewOutbox(pool), r, within, progress)
}

// RelayDrainOf is RelayDrain on any store's outbox: it runs r until box is empty.
func RelayDrainOf(ctx context.Context, box Backlog, r *relay.Relay, within time.Duration, progress io.Writer) (time.Duration, error) {
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	err := WaitDrained(ctx, box, within, 2*time.Millisecond, done, progress)
	elapsed := time.Since(start)
	stop()
	if runErr := <-done; runErr != nil && err == nil {
		err = fmt.Errorf("relay: %w", runErr)
	}
	return elapsed, err
}

// WaitOutboxDrained polls the outbox every so often until it is empty. A value on stopped
// (a relay that returned) ends the wait with an error. Progress, when set, gets a line a
// second with the rows left.
func WaitOutboxDrained(ctx context.Context, pool *pgxpool.Pool, within, every time.Duration, stopped <-chan error, progress io.Writer) error {
	return WaitDrained(ctx, postgres.NewOutbox(pool), within, every, stopped, progress)
}

// WaitDrained is WaitOutboxDrained on any store's outbox.
func WaitDrained(ctx context.Context, box Backlog, within, every time.Duration, stopped <-chan error, progress io.Writer) error {
	start := time.Now()
	deadline := start.Add(within)
	lastLine := start
	for {
		empty, err := box.Empty(ctx)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if empty {
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("bench: the outbox is not empty after %v", within)
		}
		if progress != nil && now.Sub(lastLine) >= time.Second {
			// A count scans the outbox: once a second it costs the relay little.
			if left, err := box.Waiting(ctx); err == nil {
				fmt.Fprintf(progress, "bench: relay: %d appends left in the outbox, %.0fs\n", left, now.Sub(start).Seconds())
			}
			lastLine = now
		}
		select {
		case err := <-stopped:
			return fmt.Errorf("bench: the relay stopped before the outbox was empty: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// RecordSizes reads up to n records of a partition of topic, from its start to its end as it
// is now, and returns the size of each value and of each whole record as the broker stores
// it without framing (value, key, header names and values).
func RecordSizes(ctx context.Context, brokers []string, topic string, partition, n int) (values, records []int, err error) {
	return RecordSizesWith(ctx, brokers, kafkasec.Security{}, topic, partition, n)
}

// RecordSizesWith is RecordSizes over brokers reached with sec.
func RecordSizesWith(ctx context.Context, brokers []string, sec kafkasec.Security, topic string, partition, n int) (values, records []int, err error) {
	dialer, err := sec.Dialer()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	conn, err := dialer.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %s/%d: %w", topic, partition, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: offsets of %s/%d: %w", topic, partition, err)
	}
	if last <= first {
		return nil, nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Dialer: dialer, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(records) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && len(records) > 0 {
				break
			}
			return nil, nil, fmt.Errorf("bench: read %s/%d: %w", topic, partition, err)
		}
		size := len(m.Value) + len(m.Key)
		for _, h := range m.Headers {
			size += len(h.Key) + len(h.Value)
		}
		values, records = append(values, len(m.Value)), append(records, size)
		if m.Offset >= last-1 {
			break
		}
	}
	return values, records, nil
}

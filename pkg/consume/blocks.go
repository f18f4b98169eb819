package consume

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A Block records that a group stopped applying a stream: one of its events went to the
// dead-letter topic, so the stream's later events are parked rather than applied out of order.
type Block struct {
	StreamID  string
	EventID   uuid.UUID // uuid.Nil when the record could not be decoded
	Topic     string
	Partition int
	Offset    int64
	Reason    string
}

// BlockStore keeps the blocked streams of consumer groups. It must outlive the process for
// the ordering promise to hold across restarts: PostgresBlocks does; MemoryBlocks forgets
// on restart and is meant for consumers without a database.
type BlockStore interface {
	// Load returns the group's blocked streams by stream id.
	Load(ctx context.Context, group string) (map[string]Block, error)
	// Add blocks b.StreamID for the group; a stream that is blocked already keeps its first
	// block.
	Add(ctx context.Context, group string, b Block) error
}

// PostgresBlocks keeps blocks in the annals_consumer_blocks table.
func PostgresBlocks(pool *pgxpool.Pool) BlockStore { return pgBlocks{pool} }

type pgBlocks struct{ pool *pgxpool.Pool }

func (s pgBlocks) Load(ctx context.Context, group string) (map[string]Block, error) {
	rows, err := s.pool.Query(ctx, `select stream_id, coalesce(event_id, '00000000-0000-0000-0000-000000000000'::uuid),
		topic, partition, "offset", reason from annals_consumer_blocks where group_name = $1`, group)
	if err != nil {
		return nil, fmt.Errorf("load blocked streams: %w", err)
	}
	out := map[string]Block{}
	var b Block
	_, err = pgx.ForEachRow(rows, []any{&b.StreamID, &b.EventID, &b.Topic, &b.Partition, &b.Offset, &b.Reason}, func() error {
		out[b.StreamID] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load blocked streams: %w", err)
	}
	return out, nil
}

func (s pgBlocks) Add(ctx context.Context, group string, b Block) error {
	var eventID *uuid.UUID
	if b.EventID != uuid.Nil {
		eventID = &b.EventID
	}
	_, err := s.pool.Exec(ctx, `insert into annals_consumer_blocks
		(group_name, stream_id, event_id, topic, partition, "offset", reason)
		values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing`,
		group, b.StreamID, eventID, b.Topic, b.Partition, b.Offset, b.Reason)
	if err != nil {
		return fmt.Errorf("block stream %s: %w", b.StreamID, err)
	}
	return nil
}

// MemoryBlocks keeps blocks in memory, for consumers without a database: a restarted process
// forgets them, so a stream's later events may then be applied after a dead-lettered one.
func MemoryBlocks() BlockStore { return &memBlocks{m: map[string]map[string]Block{}} }

type memBlocks struct {
	mu sync.Mutex
	m  map[string]map[string]Block
}

func (s *memBlocks) Load(_ context.Context, group string) (map[string]Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Block, len(s.m[group]))
	for k, v := range s.m[group] {
		out[k] = v
	}
	return out, nil
}

func (s *memBlocks) Add(_ context.Context, group string, b Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[group] == nil {
		s.m[group] = map[string]Block{}
	}
	if _, ok := s.m[group][b.StreamID]; !ok {
		s.m[group][b.StreamID] = b
	}
	return nil
}

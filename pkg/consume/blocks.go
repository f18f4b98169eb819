package consume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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
	// Since is when the stream was blocked (zero when the store does not say).
	Since time.Time
	// Redrive says an operator asked for the stream's dead-lettered and parked events to be
	// applied again, in order (BlockTable.RequestRedrive): the member that owns the block's
	// partition does it, and releases the stream when none is left.
	Redrive bool
	// Stopped says the block stops the stream's partition at a failing event that was not
	// dead-lettered (Config.StopOnFailure): nothing of the partition from Offset on is
	// handled or committed until the block is released, and the member then tries the event
	// again. Its Reason starts with "stopped: ", which is how BlockTable keeps the flag.
	Stopped bool
}

// stoppedPrefix starts the reason of a stopped block.
const stoppedPrefix = "stopped: "

// at reports whether b blocks the stream at the same record as o: the same block, whatever
// its reason or redrive request.
func (b Block) at(o Block) bool {
	return b.StreamID == o.StreamID && b.Topic == o.Topic && b.Partition == o.Partition && b.Offset == o.Offset
}

// BlockStore keeps the blocked streams of consumer groups. It must outlive the process for
// the ordering promise to hold across restarts: PostgresBlocks does; MemoryBlocks forgets
// on restart and is meant for consumers without a database.
//
// A running consumer reads its group's blocks again every Config.BlockRefresh, so that a
// block an operator released, or a redrive an operator asked for, takes effect without a
// restart.
type BlockStore interface {
	// Load returns the group's blocked streams by stream id.
	Load(ctx context.Context, group string) (map[string]Block, error)
	// Add blocks b.StreamID for the group; a stream that is blocked already keeps its first
	// block.
	Add(ctx context.Context, group string, b Block) error
	// Replace replaces the stream's block old (as Load returned it) with next, or releases the
	// stream when next is nil, and reports whether it did: false when the block changed
	// meanwhile (an operator released the stream, say), which leaves it as it is.
	Replace(ctx context.Context, group string, old Block, next *Block) (bool, error)
}

// ErrNotBlocked is returned for a stream that the group has not blocked.
var ErrNotBlocked = errors.New("the stream is not blocked")

// PostgresBlocks keeps blocks in the annals_consumer_blocks table.
func PostgresBlocks(pool *pgxpool.Pool) *BlockTable { return &BlockTable{pool: pool} }

// BlockTable is the annals_consumer_blocks table: the BlockStore of consumers with a
// PostgreSQL database, and what an operator does with blocked streams (`annals dlq`): List
// them, RequestRedrive or Release one. What an operator changes takes effect in the running
// consumers at their next refresh (Config.BlockRefresh).
type BlockTable struct{ pool *pgxpool.Pool }

var _ BlockStore = (*BlockTable)(nil)

const blockColumns = `stream_id, coalesce(event_id, '00000000-0000-0000-0000-000000000000'::uuid),
	topic, partition, "offset", reason, blocked_at, redrive_requested_at is not null`

func scanBlock(row pgx.CollectableRow) (Block, error) {
	var b Block
	err := row.Scan(&b.StreamID, &b.EventID, &b.Topic, &b.Partition, &b.Offset, &b.Reason, &b.Since, &b.Redrive)
	b.Since = b.Since.UTC()
	b.Stopped = strings.HasPrefix(b.Reason, stoppedPrefix)
	return b, err
}

// Load returns the group's blocked streams by stream id.
func (s *BlockTable) Load(ctx context.Context, group string) (map[string]Block, error) {
	rows, err := s.pool.Query(ctx, `select `+blockColumns+` from annals_consumer_blocks where group_name = $1`, group)
	if err != nil {
		return nil, fmt.Errorf("load blocked streams: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanBlock)
	if err != nil {
		return nil, fmt.Errorf("load blocked streams: %w", err)
	}
	out := make(map[string]Block, len(list))
	for _, b := range list {
		out[b.StreamID] = b
	}
	return out, nil
}

// Add blocks b.StreamID for the group; a stream that is blocked already keeps its first block.
func (s *BlockTable) Add(ctx context.Context, group string, b Block) error {
	_, err := s.pool.Exec(ctx, `insert into annals_consumer_blocks
		(group_name, stream_id, event_id, topic, partition, "offset", reason)
		values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing`,
		group, b.StreamID, nullID(b.EventID), b.Topic, b.Partition, b.Offset, b.Reason)
	if err != nil {
		return fmt.Errorf("block stream %s: %w", b.StreamID, err)
	}
	return nil
}

// Replace moves the stream's block old to next, or deletes it when next is nil, unless it
// changed meanwhile. A redrive request stays while next.Redrive is set and is cleared
// otherwise.
func (s *BlockTable) Replace(ctx context.Context, group string, old Block, next *Block) (bool, error) {
	where := `where group_name = $1 and stream_id = $2 and topic = $3 and partition = $4 and "offset" = $5`
	args := []any{group, old.StreamID, old.Topic, old.Partition, old.Offset}
	sql := `delete from annals_consumer_blocks ` + where
	if next != nil {
		sql = `update annals_consumer_blocks set event_id = $6, topic = $7, partition = $8, "offset" = $9, reason = $10,
			redrive_requested_at = case when $11 then coalesce(redrive_requested_at, clock_timestamp()) end ` + where
		args = append(args, nullID(next.EventID), next.Topic, next.Partition, next.Offset, next.Reason, next.Redrive)
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return false, fmt.Errorf("settle the block of stream %s: %w", old.StreamID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// BlockedStream is a stream blocked in a consumer group.
type BlockedStream struct {
	Group string
	Block
}

// List returns the blocked streams of group, or of every group when group is "", by group
// and stream.
func (s *BlockTable) List(ctx context.Context, group string) ([]BlockedStream, error) {
	rows, err := s.pool.Query(ctx, `select group_name, `+blockColumns+` from annals_consumer_blocks
		where $1 = '' or group_name = $1 order by group_name, stream_id`, group)
	if err != nil {
		return nil, fmt.Errorf("list blocked streams: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (BlockedStream, error) {
		var bs BlockedStream
		err := row.Scan(&bs.Group, &bs.StreamID, &bs.EventID, &bs.Topic, &bs.Partition, &bs.Offset, &bs.Reason, &bs.Since, &bs.Redrive)
		bs.Since = bs.Since.UTC()
		bs.Stopped = strings.HasPrefix(bs.Reason, stoppedPrefix)
		return bs, err
	})
	if err != nil {
		return nil, fmt.Errorf("list blocked streams: %w", err)
	}
	return out, nil
}

// Get returns the stream's block in group, or ErrNotBlocked.
func (s *BlockTable) Get(ctx context.Context, group, streamID string) (Block, error) {
	return s.one(ctx, `select `+blockColumns+` from annals_consumer_blocks where group_name = $1 and stream_id = $2`, group, streamID)
}

// RequestRedrive asks the group's consumers to apply the stream's dead-lettered and parked
// events again, in order, and then to release the stream. It returns the block as it is now,
// or ErrNotBlocked.
func (s *BlockTable) RequestRedrive(ctx context.Context, group, streamID string) (Block, error) {
	return s.one(ctx, `update annals_consumer_blocks set redrive_requested_at = clock_timestamp()
		where group_name = $1 and stream_id = $2 returning `+blockColumns, group, streamID)
}

// Release deletes the stream's block in group, so that its later events are applied again;
// the events dead-lettered and parked so far stay in the dead-letter topic, unapplied. A
// stopped block (Block.Stopped) has none: its release has the member that owns the partition
// read it again from the failing event, which it tries once more. It returns the block it
// deleted, or ErrNotBlocked.
func (s *BlockTable) Release(ctx context.Context, group, streamID string) (Block, error) {
	return s.one(ctx, `delete from annals_consumer_blocks where group_name = $1 and stream_id = $2 returning `+blockColumns, group, streamID)
}

func (s *BlockTable) one(ctx context.Context, sql, group, streamID string) (Block, error) {
	rows, err := s.pool.Query(ctx, sql, group, streamID)
	if err != nil {
		return Block{}, fmt.Errorf("stream %s in group %s: %w", streamID, group, err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, scanBlock)
	if errors.Is(err, pgx.ErrNoRows) {
		return Block{}, fmt.Errorf("stream %s in group %s: %w", streamID, group, ErrNotBlocked)
	}
	if err != nil {
		return Block{}, fmt.Errorf("stream %s in group %s: %w", streamID, group, err)
	}
	return b, nil
}

func nullID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
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
		if b.Since.IsZero() {
			b.Since = time.Now().UTC()
		}
		s.m[group][b.StreamID] = b
	}
	return nil
}

func (s *memBlocks) Replace(_ context.Context, group string, old Block, next *Block) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[group][old.StreamID]
	if !ok || !cur.at(old) {
		return false, nil
	}
	if next == nil {
		delete(s.m[group], old.StreamID)
		return true, nil
	}
	n := *next
	n.StreamID, n.Since = cur.StreamID, cur.Since
	s.m[group][old.StreamID] = n
	return true, nil
}

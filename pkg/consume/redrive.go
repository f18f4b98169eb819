package consume

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// refreshBlocks reads the group's blocks again, between two batches: a stream an operator
// released flows again from the next batch, and the streams of this member's partitions whose
// redrive was requested are redriven now. It reports false when a redrive stopped because a
// dependency was unavailable or the generation ended.
func (c *Consumer) refreshBlocks(ctx, gctx context.Context, bs *blockSet, offsets map[topicPartition]int64, pms map[topicPartition]*partitionMetrics) bool {
	loaded, err := c.cfg.Blocks.Load(gctx, c.cfg.Group)
	if err != nil {
		if gctx.Err() == nil {
			c.log.Warn("consume: cannot read the blocked streams again; keeping those known", "error", err)
		}
		return true
	}
	for key, b := range bs.replace(loaded) {
		if _, still := loaded[key]; !still {
			c.log.Info("consume: a blocked stream was released; its later events are applied again", "stream_id", key,
				"blocked_at", b.place())
		}
	}
	c.cfg.Metrics.blocked.WithLabelValues(c.cfg.Group).Set(float64(len(loaded)))
	for _, key := range slices.Sorted(maps.Keys(loaded)) {
		b := loaded[key]
		tp := topicPartition{b.Topic, b.Partition}
		upTo, owned := offsets[tp]
		if !b.Redrive || !owned {
			continue // another member owns the partition, or none does
		}
		if b.Stopped {
			// Nothing of a stopped partition was dead-lettered: its redrive is its release,
			// after which the session reads the partition again from the failing event.
			if _, err := c.cfg.Blocks.Replace(gctx, c.cfg.Group, b, nil); err != nil {
				c.log.Warn("consume: cannot release a stopped stream for its redrive", "stream_id", key, "error", err)
				continue
			}
			bs.remove(key)
			continue
		}
		if !c.redrive(ctx, gctx, b, upTo, bs, pms[tp]) {
			return false
		}
	}
	return true
}

// redrive applies the dead-lettered and parked events of b's stream that this member has read
// past (below upTo), in their order, through the handler and its retries as if they arrived
// now, moving the block past each one it applies, and releases the stream when none is left.
// An event that fails again stays the stream's block, with its new reason and the request
// cleared, and goes to the dead-letter topic again. It reports false when it stopped because a
// dependency was unavailable or the generation ended; the block then stays where it got to,
// requested still, and the next refresh carries on.
//
// The events come from the dead-letter topic, where the group wrote them with every header of
// their records: they are the records the group read, and only those, so nothing is applied
// that the group has not seen, and the later events of the stream (from upTo on) are applied
// as they arrive, after these.
func (c *Consumer) redrive(ctx, gctx context.Context, b Block, upTo int64, bs *blockSet, pm *partitionMetrics) bool {
	log := c.log.With("stream_id", b.StreamID)
	if upTo <= b.Offset {
		return true // this member has not read the stream's block yet
	}
	var letters []DeadLetter
	err := ScanDeadLetters(gctx, DeadLetterScan{Brokers: c.cfg.Brokers, Security: c.cfg.Security, Topic: c.cfg.DLQTopic, StreamID: b.StreamID},
		func(d DeadLetter) error { letters = append(letters, d); return nil })
	if err != nil {
		if gctx.Err() == nil {
			log.Warn("consume: cannot read the dead-letter topic for a redrive; trying again at the next refresh", "error", err)
		}
		return true
	}
	parked, err := Parked(letters, b, upTo)
	if err != nil {
		refused := b
		refused.Reason, refused.Redrive = "redrive refused: "+err.Error(), false
		if _, serr := c.cfg.Blocks.Replace(gctx, c.cfg.Group, b, &refused); serr != nil {
			log.Warn("consume: cannot record a refused redrive", "error", serr)
		}
		log.Error("consume: cannot redrive the stream; it stays blocked", "reason", err)
		return true
	}
	log.Info("consume: redriving a blocked stream", "events", len(parked), "from", b.place())
	hctx, cancel := c.drainContext(ctx, gctx)
	defer cancel()
	fresh := &blockSet{m: map[string]Block{}} // where c.one blocks the stream if an event fails again
	cur := b
	for i, d := range parked {
		if gctx.Err() != nil {
			return false // the partition may go to another member; it carries on from the block
		}
		it := &item{raw: d.Original()}
		it.m = Message{Topic: it.raw.Topic, Partition: it.raw.Partition, Offset: it.raw.Offset,
			Key: it.raw.Key, Value: it.raw.Value, Headers: it.raw.Headers, Time: it.raw.Time}
		it.m.Event, it.decodeErr = c.cfg.Decode(it.raw)
		if IsQuarantined(it.decodeErr) {
			// It was taken for the relay's when it was parked, and no longer verifies (its key
			// is no longer accepted): applying nothing and moving on would skip a genuine event.
			refused := cur
			refused.Reason, refused.Redrive = "redrive refused: "+it.decodeErr.Error(), false
			if _, err := c.cfg.Blocks.Replace(hctx, c.cfg.Group, cur, &refused); err != nil {
				log.Warn("consume: cannot record a refused redrive", "error", err)
			}
			log.Error("consume: cannot redrive the stream; it stays blocked", "reason", it.decodeErr)
			return true
		}
		if !c.one(hctx, gctx, it, fresh, pm) {
			return false
		}
		if failed, ok := fresh.get(b.StreamID); ok {
			failed.Reason, failed.Redrive = "redrive: "+failed.Reason, false
			if _, err := c.cfg.Blocks.Replace(hctx, c.cfg.Group, cur, &failed); err != nil {
				log.Warn("consume: cannot move the block to the event that failed again", "error", err)
				return false
			}
			bs.put(failed)
			log.Error("consume: an event failed again during its redrive; the stream stays blocked at it",
				"applied", i, "of", len(parked), "at", it.m.String(), "reason", failed.Reason)
			return true
		}
		var next *Block
		if i+1 < len(parked) {
			n := blockAt(parked[i+1], cur.Reason)
			n.Redrive = true
			next = &n
		}
		moved, err := c.cfg.Blocks.Replace(hctx, c.cfg.Group, cur, next)
		if err != nil {
			log.Warn("consume: cannot move the block past a redriven event; carrying on later", "error", err)
			return false
		}
		if !moved {
			log.Warn("consume: the stream's block changed during its redrive (released by an operator?); the redrive stops",
				"applied", i+1, "of", len(parked))
			return true // the next refresh reads the block as it is now
		}
		if next != nil {
			cur = *next
			bs.put(cur)
		}
	}
	bs.remove(b.StreamID)
	log.Info("consume: redrive done; the stream is released", "events", len(parked))
	return true
}

// blockAt is the block of a stream at the record a dead letter stands for.
func blockAt(d DeadLetter, reason string) Block {
	id, _ := uuid.Parse(d.EventID)
	return Block{StreamID: d.StreamID, EventID: id, Topic: d.OriginalTopic, Partition: d.OriginalPartition,
		Offset: d.OriginalOffset, Reason: reason}
}

// drainContext is the context of handlers run outside a batch: ctx's values, not cancelled
// when ctx is, and cancelled DrainTimeout after the generation ends.
func (c *Consumer) drainContext(ctx, gctx context.Context) (context.Context, context.CancelFunc) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(gctx, func() { time.AfterFunc(c.cfg.DrainTimeout, cancel) })
	return hctx, func() { stop(); cancel() }
}

// place names a block's record: topic/partition@offset.
func (b Block) place() string { return fmt.Sprintf("%s/%d@%d", b.Topic, b.Partition, b.Offset) }

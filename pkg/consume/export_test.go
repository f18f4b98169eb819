package consume

import "context"

// LostIn is lostIn for the gap from from up to to: the records deleted, and whether the
// partition's gaps are checked on.
func (c *Consumer) LostIn(ctx context.Context, topic string, partition int, from, to int64) (n int64, known, more bool) {
	lost, known, more := c.lostIn(ctx, topicPartition{topic, partition}, lostRecords{from: from, to: to}, true)
	return lost.n, known, more
}

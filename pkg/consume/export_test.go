package consume

import "context"

// Deleted is deleted, for the package's tests.
func (c *Consumer) Deleted(ctx context.Context, topic string, partition int, next, got int64) bool {
	return c.deleted(ctx, topicPartition{topic, partition}, next, got)
}

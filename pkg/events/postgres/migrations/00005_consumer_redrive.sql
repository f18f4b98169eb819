-- An operator's request to redrive a blocked stream (annals dlq redrive): the consumer that
-- owns the stream's partition applies the stream's dead-lettered and parked events in order,
-- moving the block past each one, and deletes the block when none is left. A redrive that
-- fails again leaves the block at the event that failed, with the new reason, and clears the
-- request.

-- +goose Up
alter table annals_consumer_blocks add column redrive_requested_at timestamptz;

-- +goose Down
alter table annals_consumer_blocks drop column redrive_requested_at;

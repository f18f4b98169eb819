-- What consumer groups (pkg/consume) keep in PostgreSQL.
--
-- annals_inbox: the events each group has applied, written in the same transaction as the
-- effect, so that a redelivered event is skipped (exactly-once effects).
-- annals_consumer_blocks: the streams a group has stopped applying because one of their
-- events went to the dead-letter topic; the later events of such a stream are parked (sent to
-- the dead-letter topic too) instead of being applied out of order. Deleting a row unblocks
-- the stream for events that arrive after that.

-- +goose Up
create table annals_inbox (
    group_name   text not null,
    event_id     uuid not null,
    processed_at timestamptz not null default now(),
    primary key (group_name, event_id)
);
create index annals_inbox_processed_at on annals_inbox using brin (processed_at);

create table annals_consumer_blocks (
    group_name text not null,
    stream_id  text not null,
    event_id   uuid,          -- null when the record could not be decoded
    topic      text not null,
    partition  integer not null,
    "offset"   bigint not null,
    reason     text not null,
    blocked_at timestamptz not null default now(),
    primary key (group_name, stream_id)
);

-- +goose Down
drop table annals_consumer_blocks;
drop table annals_inbox;

-- The event store: streams, their events, snapshots, counters for statistics, and the
-- transactional outbox that the relay drains.

-- +goose Up
create table annals_streams (
    stream_id  text primary key,
    category   text not null,
    -- the version of the stream's last event (0-based, contiguous)
    version    bigint not null check (version >= 0),
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp()
);

create table annals_events (
    global_position bigint generated always as identity primary key,
    event_id        uuid not null unique,
    stream_id       text not null,
    category        text not null,
    version         bigint not null check (version >= 0),
    type            text not null,
    schema_version  integer not null default 1,
    data            jsonb not null,
    metadata        jsonb not null default '{}',
    correlation_id  text,
    causation_id    text,
    recorded_at     timestamptz not null default clock_timestamp(),
    unique (stream_id, version)
);
-- Events are appended in time order, so a block-range index serves time ranges at almost no
-- cost per insert.
create index annals_events_recorded_at on annals_events using brin (recorded_at);
create index annals_events_type on annals_events (type, global_position);

-- Counters that appends maintain, so that statistics never count the events table. Each
-- counter is spread over shards (by server process) so that concurrent appends do not queue
-- on one row; a counter's value is the sum of its shards. Names: 'streams', 'type:<type>'.
create table annals_counters (
    name  text not null,
    shard smallint not null,
    value bigint not null,
    primary key (name, shard)
);

create table annals_snapshots (
    stream_id            text not null,
    state_schema_version integer not null,
    version              bigint not null,
    state                jsonb not null,
    created_at           timestamptz not null default clock_timestamp(),
    primary key (stream_id, state_schema_version, version)
);

-- One row per append to publish: the stream and the version range it added, written in the
-- transaction of the events themselves. tx_id orders rows by commit safety: a reader takes
-- only rows whose transaction is older than every transaction still running, so a row that
-- commits late is never skipped.
create table annals_outbox (
    id            bigint generated always as identity primary key,
    tx_id         xid8 not null default pg_current_xact_id(),
    stream_id     text not null,
    category      text not null,
    first_version bigint not null,
    last_version  bigint not null,
    created_at    timestamptz not null default clock_timestamp()
);
create index annals_outbox_tx on annals_outbox (tx_id, id);

-- Responses of commands sent with an Idempotency-Key, stored in the transaction that
-- appended their events.
create table annals_idempotency (
    key          text primary key,
    request_hash bytea not null,
    status       integer not null,
    response     jsonb not null,
    created_at   timestamptz not null default clock_timestamp()
);

-- +goose Down
drop table annals_idempotency;
drop table annals_outbox;
drop table annals_snapshots;
drop table annals_counters;
drop table annals_events;
drop table annals_streams;

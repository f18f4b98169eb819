-- The event store: streams, their events, snapshots, counters for statistics, and the
-- transactional outbox that the relay drains.

-- +goose Up
-- One row per stream, written by the append that creates it. A stream's version and its last
-- change are read from its events through the (stream_id, version) index.
create table annals_streams (
    stream_id  text primary key,
    category   text not null,
    created_at timestamptz not null default clock_timestamp()
);

create table annals_events (
    global_position bigint generated always as identity primary key,
    event_id        uuid not null unique,
    stream_id       text not null,
    category        text not null,
    version         bigint not null check (version >= 0),
    type            text not null,
    schema_version  integer not null default 1,
    data            json not null, -- kept byte for byte as appended
    metadata        json not null default '{}',
    correlation_id  text,
    causation_id    text,
    recorded_at     timestamptz not null default clock_timestamp(),
    unique (stream_id, version)
);
-- Events are appended in time order, so a block-range index serves time ranges at almost no
-- cost per insert. There is deliberately no index on type: every index is paid for by every
-- append, counts by type come from annals_counters, and a type-filtered read of the
-- all-stream pages forward by position, so paging through all of it reads the table once.
create index annals_events_recorded_at on annals_events using brin (recorded_at);

-- Counters for statistics, so that they never count the events table: the relay adds an
-- outbox row's events here in the transaction that deletes the row, so every committed event
-- is counted exactly once, either here or in the outbox. Names: 'streams', 'type:<type>'.
create table annals_counters (
    name  text primary key,
    value bigint not null
);

create table annals_snapshots (
    stream_id            text not null,
    state_schema_version integer not null,
    version              bigint not null,
    state                jsonb not null,
    created_at           timestamptz not null default clock_timestamp(),
    primary key (stream_id, state_schema_version, version)
);

-- One row per append to publish: the stream, the version range it added and the events'
-- types, written in the transaction of the events themselves. The relay reads the committed
-- rows, oldest transaction (tx_id) first, and deletes each once published: a row that commits
-- late is read later, never skipped, because no high-water mark is kept. The key gives each
-- stream's pending appends in version order.
create table annals_outbox (
    stream_id     text not null,
    first_version bigint not null,
    last_version  bigint not null,
    tx_id         xid8 not null default pg_current_xact_id(),
    category      text not null,
    types         text[] not null,
    created_at    timestamptz not null default clock_timestamp(),
    primary key (stream_id, first_version)
);
create index annals_outbox_tx on annals_outbox (tx_id);

-- Appends the relay could not publish (an event type without a schema, a record over the
-- broker's size limit), moved aside with the reason so that they block nothing and are never
-- dropped silently.
create table annals_outbox_dead (
    stream_id     text not null,
    first_version bigint not null,
    last_version  bigint not null,
    category      text not null,
    types         text[] not null,
    error         text not null,
    created_at    timestamptz not null,
    moved_at      timestamptz not null default clock_timestamp(),
    primary key (stream_id, first_version)
);

-- Responses of commands sent with an Idempotency-Key, stored in the transaction that
-- appended their events; pruned after a while (PruneIdempotency).
create table annals_idempotency (
    key          text primary key,
    request_hash bytea not null,
    status       integer not null,
    response     bytea not null, -- the response body, byte for byte
    created_at   timestamptz not null default clock_timestamp()
);

-- +goose Down
drop table annals_idempotency;
drop table annals_outbox_dead;
drop table annals_outbox;
drop table annals_snapshots;
drop table annals_counters;
drop table annals_events;
drop table annals_streams;

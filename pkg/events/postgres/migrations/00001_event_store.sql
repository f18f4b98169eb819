-- The event store: streams, their events, per-type counts for statistics, snapshots.

-- +goose Up
create table annals_streams (
    stream_id  text primary key,
    category   text not null,
    -- the version of the stream's last event (0-based, contiguous)
    version    bigint not null check (version >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table annals_events (
    global_position bigint generated always as identity primary key,
    event_id        uuid not null unique,
    stream_id       text not null references annals_streams (stream_id),
    category        text not null,
    version         bigint not null check (version >= 0),
    type            text not null,
    schema_version  integer not null default 1,
    data            jsonb not null,
    metadata        jsonb not null default '{}',
    correlation_id  text,
    causation_id    text,
    recorded_at     timestamptz not null default now(),
    unique (stream_id, version)
);
create index annals_events_recorded_at on annals_events (recorded_at, global_position);
create index annals_events_type on annals_events (type, global_position);

-- Maintained by appends, so that statistics never count the events table.
create table annals_event_type_counts (
    type   text primary key,
    events bigint not null
);

create table annals_snapshots (
    stream_id            text not null references annals_streams (stream_id),
    version              bigint not null,
    state_schema_version integer not null,
    state                jsonb not null,
    created_at           timestamptz not null default now(),
    primary key (stream_id, version)
);

-- +goose Down
drop table annals_snapshots;
drop table annals_event_type_counts;
drop table annals_events;
drop table annals_streams;

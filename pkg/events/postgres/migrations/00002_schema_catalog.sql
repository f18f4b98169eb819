-- The schema catalog: every Avro schema the writers publish events with, by fingerprint, so
-- that a consumer meeting a fingerprint it does not know can fetch the writer's schema
-- (GET /v1/schemas/{fingerprint} on the writer). Rows are only ever added (pkg/schema
-- Catalog.Register).

-- +goose Up
create table annals_schemas (
    -- CRC-64-AVRO of the schema's Parsing Canonical Form: the uint64's bits as a bigint.
    fingerprint   bigint primary key,
    type          text not null,
    version       integer not null check (version >= 1),
    schema        text not null, -- the Parsing Canonical Form
    registered_at timestamptz not null default clock_timestamp(),
    unique (type, version)
);

-- +goose Down
drop table annals_schemas;

-- The auditor's hash-chained audit log: one row per event the auditor has seen, appended
-- and never changed.
--
-- seq numbers the entries 1, 2, 3, ... without gaps; prev_hash is the hash of entry seq - 1
-- (32 zero bytes for entry 1) and hash is SHA-256 over the entry's canonical encoding, which
-- covers seq, prev_hash and every other column (package auditlog documents the encoding).
-- Appends are serialised by a transaction-level advisory lock keyed by this table's oid, so
-- concurrent appenders never fork the chain; the primary key on seq is a second guard.
--
-- data is json (not jsonb) because json keeps the exact bytes the hash covers. The role the
-- auditor runs as may only insert and select (see auditlog.Migrate); the trigger below also
-- refuses updates, deletes and truncation by anyone else until it is disabled, which takes the
-- table's owner and is what verification exists to catch.

-- +goose Up
create table annals_audit_log (
    seq             bigint primary key check (seq >= 1),
    event_id        uuid not null unique,
    event_type      text not null,
    stream_id       text not null,
    stream_version  bigint not null,
    global_position bigint not null,
    schema_version  integer not null,
    data            json not null,
    metadata        jsonb not null check (jsonb_typeof(metadata) = 'object'),
    correlation_id  text not null,
    causation_id    text not null,
    recorded_at     timestamptz not null,
    audited_at      timestamptz not null,
    topic           text not null,
    kafka_partition integer not null,
    kafka_offset    bigint not null,
    prev_hash       bytea not null check (length(prev_hash) = 32),
    hash            bytea not null check (length(hash) = 32)
);
create index annals_audit_log_stream on annals_audit_log (stream_id, seq);
create index annals_audit_log_type on annals_audit_log (event_type, seq);
create index annals_audit_log_recorded_at on annals_audit_log (recorded_at, seq);

-- +goose StatementBegin
create function annals_audit_log_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'annals_audit_log is append-only: % refused', tg_op;
end $$;
-- +goose StatementEnd
create trigger annals_audit_log_append_only before update or delete on annals_audit_log
    for each row execute function annals_audit_log_append_only();
create trigger annals_audit_log_no_truncate before truncate on annals_audit_log
    for each statement execute function annals_audit_log_append_only();

-- +goose Down
drop table annals_audit_log;
drop function annals_audit_log_append_only();

-- A stream is held, never skipped. An append the relay cannot publish (an event type without a
-- schema, a record over the topic's max.message.bytes, a record the broker refuses) stays in
-- the outbox and holds its stream: the stream's later appends stay there too, behind it, while
-- every other stream flows. Only an operator releases a hold (annals outbox retry) or gives up
-- on the held append (annals outbox skip), which is then moved to annals_outbox_dead with who
-- decided it and why.
--
-- annals_outbox.held marks the rows of held streams, so that the relay's walk in transaction
-- order (the partial index annals_outbox_tx) passes over them at no cost, however many there
-- are; annals_outbox_held finds them again when a hold is released. A row is marked only while
-- its stream's hold exists (the relay locks the hold to mark it, and a release unmarks the rows
-- after deleting the hold), and the relay unmarks, every few seconds, the rows of any stream
-- whose hold was deleted by hand.

-- +goose Up
alter table annals_outbox add column held boolean not null default false;
drop index annals_outbox_tx;
create index annals_outbox_tx on annals_outbox (tx_id) where not held;
create index annals_outbox_held on annals_outbox (stream_id) where held;

-- One row per held stream: the oldest append of the stream that the relay could not publish,
-- and why.
create table annals_outbox_holds (
    stream_id     text primary key,
    category      text not null,
    first_version bigint not null,
    last_version  bigint not null,
    reason        text not null,
    held_at       timestamptz not null default clock_timestamp()
);

-- Rows moved here by an operator's skip say who skipped the append and why (error keeps the
-- hold's reason). Rows without them were moved aside by relays before holds existed.
alter table annals_outbox_dead add column skipped_by text, add column skip_reason text;

-- +goose Down
alter table annals_outbox_dead drop column skipped_by, drop column skip_reason;
drop table annals_outbox_holds;
drop index annals_outbox_held;
drop index annals_outbox_tx;
create index annals_outbox_tx on annals_outbox (tx_id);
alter table annals_outbox drop column held;

-- The notifier's own tables: the user directory (addresses from the user events), the orders
-- it needs for order emails (owner and lines, from the order events), the directory's read
-- positions on the user topic, and the sent log.

-- +goose Up

-- One row per user stream, as its events made it; version is the version of the last event
-- applied, so an event applied before (a redelivery) changes nothing. email is empty while
-- the user's UserCreated has not been seen (a profile update came first).
create table annals_notifier_users (
    user_id        uuid primary key,
    email          text not null,
    name           text not null,
    status         text not null check (status in ('active', 'deactivated')),
    deactivated_at timestamptz,
    version        bigint not null check (version >= 0),
    updated_at     timestamptz not null default clock_timestamp()
);

-- One row per order stream: its owner and its lines ({id, name, price_cents, quantity}), with
-- the same version guard.
create table annals_notifier_orders (
    order_id    uuid primary key,
    user_id     uuid not null,
    items       jsonb not null default '[]' check (jsonb_typeof(items) = 'array'),
    total_cents bigint not null,
    version     bigint not null check (version >= 0)
);

-- Where the directory has read the user topic to: the next offset of each partition. It
-- commits with the directory rows it covers.
create table annals_notifier_directory_offsets (
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null check (next_offset >= 0),
    primary key (topic, partition)
);

-- The sent log: one row per event the notifier handled with an email, written once the SMTP
-- server accepted it (status sent), or when no email was due (status skipped, with the
-- reason). Checked before every send.
create table annals_notifier_sent (
    event_id   uuid primary key,
    event_type text not null,
    stream_id  text not null,
    kind       text not null,
    recipient  text not null,
    subject    text not null,
    message_id text not null,
    status     text not null check (status in ('sent', 'skipped')),
    reason     text not null default '',
    sent_at    timestamptz not null default clock_timestamp()
);
create index annals_notifier_sent_recipient on annals_notifier_sent (lower(recipient), event_id);

-- +goose Down
drop table annals_notifier_sent;
drop table annals_notifier_directory_offsets;
drop table annals_notifier_orders;
drop table annals_notifier_users;

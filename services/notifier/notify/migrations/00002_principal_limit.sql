-- The limit on the emails one principal's commands cause per hour
-- (NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR): a count per principal and hour of the events'
-- recording, and the decision about each email event, so that an event delivered again is
-- neither counted again nor decided otherwise. A principal is the actor of the command
-- (actor_kind, actor_issuer, actor of the event's metadata), keyed by a SHA-256 of the three
-- so that a long token subject fits the index.

-- +goose Up

-- One row per principal and hour with an email: emails admitted (sent, or being sent) and
-- emails suppressed over the limit.
create table annals_notifier_principal_hours (
    principal    bytea not null,
    hour         timestamptz not null,
    actor_kind   text not null,
    actor_issuer text not null,
    actor        text not null,
    emails       integer not null check (emails >= 0),
    suppressed   integer not null default 0 check (suppressed >= 0),
    primary key (principal, hour)
);

-- One row per email event the limit decided: admitted, or suppressed (and then in the sent
-- log with status suppressed, written in the same transaction).
create table annals_notifier_principal_emails (
    event_id   uuid primary key,
    principal  bytea not null,
    hour       timestamptz not null,
    admitted   boolean not null,
    decided_at timestamptz not null default clock_timestamp()
);

alter table annals_notifier_sent drop constraint annals_notifier_sent_status_check;
alter table annals_notifier_sent add constraint annals_notifier_sent_status_check
    check (status in ('sent', 'skipped', 'suppressed'));

-- +goose Down
delete from annals_notifier_sent where status = 'suppressed';
alter table annals_notifier_sent drop constraint annals_notifier_sent_status_check;
alter table annals_notifier_sent add constraint annals_notifier_sent_status_check
    check (status in ('sent', 'skipped'));
drop table annals_notifier_principal_emails;
drop table annals_notifier_principal_hours;

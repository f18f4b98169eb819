-- Erasure of a user's personal data (crypto-shredding): the directory keeps an erased user's
-- row as a tombstone, without email and name, so that the user's order emails are suppressed
-- rather than waiting for an address that will never come; the sent log names the user each
-- email was for, so that an erasure finds and redacts the user's rows (recipient, subject).

-- +goose Up
alter table annals_notifier_users add column erased_at timestamptz;
alter table annals_notifier_sent add column user_id uuid;
create index annals_notifier_sent_user on annals_notifier_sent (user_id) where user_id is not null;

-- +goose Down
drop index annals_notifier_sent_user;
alter table annals_notifier_sent drop column user_id;
alter table annals_notifier_users drop column erased_at;

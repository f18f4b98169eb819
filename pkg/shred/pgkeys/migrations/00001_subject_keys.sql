-- Each subject's data key, wrapped by a KEK, and the tombstone of each erased subject.
-- Erasing a subject sets wrapped_key to null (the data key is gone) and fills erased_at; the
-- row stays as the tombstone, so that the subject never gets a new key. A subject erased before
-- it ever had a key gets a tombstone row without one.

-- +goose Up
create table annals_subject_keys (
    subject      text primary key,
    kek_id       text,
    wrapped_key  bytea,
    created_at   timestamptz not null default now(),
    erased_at    timestamptz,
    erased_by    text not null default '',
    erase_reason text not null default '',
    constraint annals_subject_keys_key_or_tombstone check ((wrapped_key is null) = (erased_at is not null))
);

-- +goose Down
drop table annals_subject_keys;

-- The balances read model: one row per account, as the events the consumer group applied made
-- it. The group's inbox (annals_inbox) and blocked streams (annals_consumer_blocks) come with
-- the event store's migrations.

-- +goose Up
create table bank_balances (
    account_id            text primary key,
    owner                 text not null,
    overdraft_limit_cents bigint not null,
    balance_cents         bigint not null,
    status                text not null,
    version               bigint not null, -- the stream version of the last event applied
    updated_at            timestamptz not null -- when the store recorded that event
);

-- +goose Down
drop table bank_balances;

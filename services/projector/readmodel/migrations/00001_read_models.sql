-- The projector's read models: users and orders as their events made them.
--
-- The tables come in generations (annals_proj_users_g<N>, annals_proj_orders_g<N>); the
-- one-row table annals_proj_generation names the live one. A rebuild fills generation N+1
-- from the event store next to the live one and then switches the pointer (readmodel.Rebuild).
-- It creates the new tables with "create table ... (like <live table> including all)", so a
-- later migration that changes the read models changes the live generation's tables (find
-- them through the pointer) and every rebuild after it inherits the change.

-- +goose Up
create table annals_proj_generation (
    singleton   boolean primary key default true check (singleton),
    generation  integer not null check (generation >= 1),
    switched_at timestamptz not null default clock_timestamp()
);
insert into annals_proj_generation (generation) values (1);

-- One row per user stream; version is the version of the stream's last applied event. Times
-- are the recording times of the events that set them.
create table annals_proj_users_g1 (
    id                  uuid primary key,
    email               text not null,
    name                text not null,
    status              text not null check (status in ('active', 'deactivated')),
    deactivation_reason text,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    deactivated_at      timestamptz,
    version             bigint not null check (version >= 0)
) with (fillfactor = 80); -- room on each page for HOT updates: most leave every index alone
create index annals_proj_users_g1_status on annals_proj_users_g1 (status, id);

-- One row per order stream. items is the order's lines in order, as JSON objects
-- {id, name, price_cents, quantity}; total_cents and item_count (the number of lines) are
-- kept with them by the same statement. Money is integer cents.
create table annals_proj_orders_g1 (
    id                  uuid primary key,
    user_id             uuid not null,
    status              text not null check (status in ('pending', 'confirmed', 'cancelled', 'shipped')),
    items               jsonb not null default '[]' check (jsonb_typeof(items) = 'array'),
    total_cents         bigint not null check (total_cents >= 0),
    item_count          integer not null check (item_count >= 0),
    cancellation_reason text,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    confirmed_at        timestamptz,
    cancelled_at        timestamptz,
    shipped_at          timestamptz,
    version             bigint not null check (version >= 0)
) with (fillfactor = 80);
create index annals_proj_orders_g1_user on annals_proj_orders_g1 (user_id, id);
create index annals_proj_orders_g1_status on annals_proj_orders_g1 (status, id);

-- +goose Down
-- +goose StatementBegin
do $$
declare t record;
begin
    for t in select tablename from pg_tables
        where schemaname = current_schema() and tablename ~ '^annals_proj_(users|orders)_g[0-9]+$'
    loop
        execute format('drop table %I', t.tablename);
    end loop;
end $$;
-- +goose StatementEnd
drop table annals_proj_generation;

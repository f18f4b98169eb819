-- When a user's personal data was erased (UserPersonalDataErased's erased_at): the user's row
-- then has an empty email and name, as the writer's aggregate has. Added to the users table of
-- every generation there is; a rebuild creates the next one like the live one, with it.

-- +goose Up
-- +goose StatementBegin
do $$
declare t record;
begin
    for t in select tablename from pg_tables
        where schemaname = current_schema() and tablename ~ '^annals_proj_users_g[0-9]+$'
    loop
        execute format('alter table %I add column erased_at timestamptz', t.tablename);
    end loop;
end $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
do $$
declare t record;
begin
    for t in select tablename from pg_tables
        where schemaname = current_schema() and tablename ~ '^annals_proj_users_g[0-9]+$'
    loop
        execute format('alter table %I drop column erased_at', t.tablename);
    end loop;
end $$;
-- +goose StatementEnd

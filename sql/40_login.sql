-- The web back end's login check (issue 34.4): without admin scope and without the stored
-- hash in its hands. Definitions like sql/20_scope.sql: re-applied by every maimdb migrate
-- (docs/conventions.md, "Scope functions and policies").
--
-- MaimWebBackend logged users in by selecting the whole `users` row, hash included, and
-- running bcrypt over it in Python. Since 0012 only maim_admin may select
-- `users.hashed_password`, so that check needed admin scope: every user's hash one query
-- away from the web back end. Now the hash stays in the database:
--
-- 1. maim.login_setting(login) gives a user's bcrypt setting — scheme, cost and salt, the
--    first 29 characters of the hash, which are not secret — or NULL (no such user, or no
--    bcrypt hash: a user the control plane made has none, "!").
-- 2. The back end hashes the password it was sent with that setting (bcrypt.hashpw), in its
--    own process: the password never reaches the database or its logs.
-- 3. maim.check_login(login, password_hash) returns the user (no hash) when the result is the
--    stored hash, else nothing. Both sides are compared as SHA-256 digests, so the time the
--    comparison takes tells nothing of how much of a guess was right.
--
-- Both are SECURITY DEFINER, for maim_tenant (the web back end) only; the definer reads
-- `users` through the definer_read policy (sql/30_policies.sql), as maim.resolve_api_key
-- reads api_keys.

create or replace function maim.login_setting(login text) returns text
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select pg_catalog.substr(u.hashed_password, 1, 29)
    from public.users u
    where u.username operator(pg_catalog.=) login
      and u.hashed_password operator(pg_catalog.~) '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'
$$;
revoke all on function maim.login_setting(text) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;
grant execute on function maim.login_setting(text) to maim_tenant;

create or replace function maim.check_login(login text, password_hash text)
    returns table (id text, username text, email text, is_active boolean,
                   created_at timestamptz, updated_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select u.id, u.username, u.email, u.is_active, u.created_at, u.updated_at
    from public.users u
    where u.username operator(pg_catalog.=) login
      and password_hash operator(pg_catalog.~) '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'
      and pg_catalog.sha256(pg_catalog.convert_to(u.hashed_password, 'UTF8'))
          operator(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to(password_hash, 'UTF8'))
$$;
revoke all on function maim.check_login(text, text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.check_login(text, text) to maim_tenant;

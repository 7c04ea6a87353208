-- Scopes a session cannot forge (docs/concepts.md, "How an agent scope is proven").
--
-- 1. Every SECURITY DEFINER function pins `search_path = pg_catalog, pg_temp`. An empty
--    search_path is not enough: PostgreSQL still looks in pg_temp first for types and
--    relations, so a caller's `create domain pg_temp.text ... check (pg_temp.pwn(value))`
--    ran pwn() as maim_owner inside open_agent_scope. With pg_temp named last, builtin
--    types resolve in pg_catalog and everything else is written schema-qualified.
-- 2. maim_plugin: code that acts for one agent by presenting that agent's API key. Its
--    agent scope is proven, not chosen: open_key_scope writes, beside maim.agent_id, a proof
--    — an HMAC-SHA-256 over (agent, backend pid, transaction start) keyed by a server secret
--    only maim_owner can read — and maim.agent_id() (sql/10_helpers.sql) accepts the
--    setting from anyone without maim_app's privileges only when the proof matches. A
--    set_config of maim.agent_id, or a proof replayed from another transaction, is an
--    error, never another agent's rows.
-- 3. Column privileges: maim_tenant reads neither users.hashed_password nor
--    api_keys.key_hash; maim_plugin has no access to either table at all.
-- 4. Key usage without a lock on the key: resolve_api_key no longer updates the api_keys
--    row inside the caller's transaction (every block on a key waited for the one before,
--    and a nested block on the same key hung). Each backend counts its uses in its own
--    api_key_usage row; api_key_list adds them up.

-- The scope-proof secret ---------------------------------------------------------------------
-- One row, readable by maim_owner alone (no grants, not in a schema anyone else writes).
-- Two independent 64-byte keys, as HMAC's inner and outer pads would be; gen_random_uuid()
-- draws from the server's strong random source (4 × 122 random bits per key).
create table maim.scope_secret (
    singleton boolean primary key default true check (singleton),
    inner_key bytea   not null check (octet_length(inner_key) = 64),
    outer_key bytea   not null check (octet_length(outer_key) = 64)
);
insert into maim.scope_secret (inner_key, outer_key)
select decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                      || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
       decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                      || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
revoke all on table maim.scope_secret from public;

-- The proof that this transaction, on this backend, holds `agent`. The backend pid and the
-- transaction's start time (epoch seconds, independent of TimeZone and DateStyle) bind it to
-- one transaction: a value copied out of one transaction proves nothing in the next.
-- Parallel restricted: a parallel worker has another pid.
create function maim.scope_proof(agent text) returns text
    language sql stable parallel restricted
    set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(s.outer_key || sha256(s.inner_key || convert_to(
               agent || '/' || pg_backend_pid()::text || '/'
               || extract(epoch from transaction_timestamp())::text, 'UTF8'))), 'hex')
    from maim.scope_secret s
$$;
revoke all on function maim.scope_proof(text) from public;

-- Does this transaction's maim.agent_proof prove `agent`? Hashing both sides before
-- comparing keeps the comparison's timing independent of how much of a guess was right.
create function maim.agent_proven(agent text) returns boolean
    language sql stable parallel restricted security definer
    set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sha256(convert_to(current_setting('maim.agent_proof', true), 'UTF8'))
                    = sha256(convert_to(maim.scope_proof(agent), 'UTF8')), false)
$$;
revoke all on function maim.agent_proven(text) from public;
grant execute on function maim.agent_proven(text) to maim_plugin, maim_tenant, maim_admin;

-- The tenant of the agent in scope (0001), qualified like maim.agent_id() and, calling it,
-- parallel restricted too.
create or replace function maim.agent_tenant_id() returns pg_catalog.text
    language plpgsql stable parallel restricted
as $$
declare
    v pg_catalog.text;
begin
    select a.tenant_id into v from public.agents a
    where a.id operator(pg_catalog.=) maim.agent_id();
    return v;
end
$$;

-- The definer functions, pinned ----------------------------------------------------------------
-- Bodies as in 0006/0011 but for the search_path, the usage recording (4) and the proof.

create or replace function maim.open_agent_scope(agent text) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    agent_status  text;
    tenant_status text;
begin
    select a.status, t.status into agent_status, tenant_status
    from public.agents a join public.tenants t on t.id = a.tenant_id
    where a.id = agent;
    if agent_status is null then
        raise exception 'agent % does not exist', agent
            using errcode = '42501', hint = 'Create it first: maimdb agent create NAME --tenant TENANT_ID';
    elsif agent_status <> 'active' then
        raise exception 'agent % is %', agent, agent_status
            using errcode = '42501', hint = 'Reactivate it: maimdb agent activate ' || agent;
    elsif tenant_status <> 'active' then
        raise exception 'the tenant of agent % is %', agent, tenant_status
            using errcode = '42501', hint = 'Reactivate the tenant: maimdb tenant activate TENANT_ID';
    end if;
    return set_config('maim.agent_id', agent, true);
end
$$;

-- Each backend counts its own uses of a key in its own row, so no two transactions ever
-- wait for each other to record a use: not two blocks on one key, not a block nested in
-- another on the same key, not a revocation behind a block that stays open.
create table api_key_usage (
    key_id       text        not null references api_keys (id) on delete cascade,
    backend      integer     not null,  -- the pid that counted these uses; 0 = before 0012
    tenant_id    text        not null,
    uses         bigint      not null check (uses > 0),
    last_used_at timestamptz not null,
    primary key (key_id, backend)
);
alter table api_key_usage enable row level security;
alter table api_key_usage force row level security;
grant select on api_key_usage to maim_tenant, maim_admin;
create policy admin_select on api_key_usage for select to maim_admin using (true);
create policy tenant_select on api_key_usage for select to maim_tenant
    using (tenant_id = (select maim.tenant_id()));
create policy definer_select on api_key_usage for select to maim_owner using (true);
create policy definer_insert on api_key_usage for insert to maim_owner with check (true);
create policy definer_update on api_key_usage for update to maim_owner
    using (true) with check (true);

insert into api_key_usage (key_id, backend, tenant_id, uses, last_used_at)
select id, 0, tenant_id, usage_count, coalesce(last_used_at, updated_at)
from api_keys where usage_count > 0;

create or replace function maim.resolve_api_key(key text)
    returns table (agent_id text, tenant_id text, key_id text, permissions text[])
    language sql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
    with found as (
        select k.agent_id, k.tenant_id, k.id, k.permissions
        from public.api_keys k
        join public.agents a on a.id = k.agent_id
        join public.tenants t on t.id = k.tenant_id
        where k.key_hash = sha256(convert_to(key, 'UTF8'))
          and k.status = 'active'
          and (k.expires_at is null or k.expires_at > now())
          and a.status = 'active' and t.status = 'active'
    ), counted as (
        insert into public.api_key_usage as u (key_id, backend, tenant_id, uses, last_used_at)
        select f.id, pg_backend_pid(), f.tenant_id, 1, now() from found f
        on conflict (key_id, backend)
            do update set uses = u.uses + 1, last_used_at = excluded.last_used_at
    )
    select f.agent_id, f.tenant_id, f.id, f.permissions from found f
$$;

create or replace function maim.open_key_scope(key text) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    agent   text;
    granted text[];
begin
    select r.agent_id, r.permissions into agent, granted from maim.resolve_api_key(key) r;
    if agent is null then
        raise exception 'invalid API key'
            using errcode = '28000',
                  hint = 'The key is unknown, revoked, expired, or its agent or tenant is suspended.';
    end if;
    perform set_config('maim.key_permissions', array_to_string(granted, ','), true);
    perform set_config('maim.agent_proof', maim.scope_proof(agent), true);
    return set_config('maim.agent_id', agent, true);
end
$$;

grant execute on function maim.open_key_scope(text) to maim_plugin;
-- Nothing else in maim is for callers to run.
revoke all on procedure maim.isolate_agent_table(regclass) from public;

-- api_keys: usage moves out, the listing adds it back ---------------------------------------
drop policy definer_update on api_keys;
alter table api_keys drop column last_used_at, drop column usage_count;

-- What a dashboard lists: every column but the hash, with the uses added up. The caller's
-- own policies and column privileges apply (security_invoker).
create view api_key_list with (security_invoker = true) as
select k.id, k.tenant_id, k.agent_id, k.name, k.description, k.key_prefix, k.permissions,
       k.status, k.expires_at, k.created_at, k.updated_at, k.replaced_by,
       coalesce(u.uses, 0)::bigint as usage_count, u.last_used_at
from public.api_keys k
left join lateral (select sum(s.uses) as uses, max(s.last_used_at) as last_used_at
                   from public.api_key_usage s where s.key_id = k.id) u on true;
grant select on api_key_list to maim_tenant, maim_admin;

-- Column privileges: the tenant role reads no secret hash ------------------------------------
revoke select on users, api_keys from maim_tenant;
grant select (id, username, email, is_active, created_at, updated_at) on users to maim_tenant;
grant select (id, tenant_id, agent_id, name, description, key_prefix, permissions, status,
              expires_at, created_at, updated_at, replaced_by) on api_keys to maim_tenant;

-- maim_plugin: what maim_app may do, for the one agent a key proves ---------------------------
-- The same table privileges as maim_app, and every maim_app policy names maim_plugin too
-- (one policy for both, so neither role evaluates a second, OR'ed copy).
do $$
declare
    r record;
begin
    for r in
        select c.oid::regclass as tbl, string_agg(a.privilege_type, ', ') as privileges
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        cross join lateral aclexplode(c.relacl) a
        where n.nspname = 'public' and a.grantee = 'maim_app'::regrole
        group by c.oid
    loop
        execute format('grant %s on %s to maim_plugin', r.privileges, r.tbl);
    end loop;
    for r in
        select p.polname, p.polrelid::regclass as tbl
        from pg_policy p
        where p.polroles = array['maim_app'::regrole::oid]
    loop
        execute format('alter policy %I on %s to maim_app, maim_plugin', r.polname, r.tbl);
    end loop;
end
$$;

-- Tables made from now on get the same (0002's procedure, with maim_plugin beside maim_app).
create or replace procedure maim.isolate_agent_table(tbl regclass)
    language plpgsql
as $$
declare
    mine   constant text := 'agent_id = (select maim.agent_id())';
    tenant constant text := 'agent_id in (select a.id from public.agents a '
                            'where a.tenant_id = (select maim.tenant_id()))';
    agent  constant text := 'maim_app, maim_plugin';
begin
    if not exists (select from pg_attribute
                   where attrelid = tbl and attname = 'agent_id' and attnotnull) then
        raise exception 'table % has no "agent_id text not null" column', tbl;
    end if;

    execute format('alter table %s enable row level security', tbl);
    execute format('alter table %s force row level security', tbl);
    execute format('grant select, insert, update, delete on %s to %s, maim_admin', tbl, agent);
    execute format('grant select on %s to maim_tenant', tbl);

    execute format('create policy app_select on %s for select to %s using (%s)', tbl, agent, mine);
    execute format('create policy app_insert on %s for insert to %s with check (%s)', tbl, agent, mine);
    execute format('create policy app_update on %s for update to %s using (%s) with check (%s)',
                   tbl, agent, mine, mine);
    execute format('create policy app_delete on %s for delete to %s using (%s)', tbl, agent, mine);

    execute format('create policy tenant_select on %s for select to maim_tenant using (%s)',
                   tbl, tenant);

    execute format('create policy admin_select on %s for select to maim_admin using (true)', tbl);
    execute format('create policy admin_insert on %s for insert to maim_admin with check (true)', tbl);
    execute format('create policy admin_update on %s for update to maim_admin using (true) with check (true)',
                   tbl);
    execute format('create policy admin_delete on %s for delete to maim_admin using (true)', tbl);
end
$$;

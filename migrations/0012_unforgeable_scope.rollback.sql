-- Back to 0011: maim_plugin loses its grants and policies, the tenant role its column
-- limits, usage returns to api_keys, and the definer functions their 0006/0011 bodies —
-- with the pinned search_path kept: a rollback does not reopen the hole 0012 closed.
-- (sql/10_helpers.sql is not versioned: its maim.agent_id() keeps asking for a proof from
-- roles without maim_app's privileges, so after this rollback only maim_app opens agents.)

create or replace procedure maim.isolate_agent_table(tbl regclass)
    language plpgsql
as $$
declare
    mine   constant text := 'agent_id = (select maim.agent_id())';
    tenant constant text := 'agent_id in (select a.id from public.agents a '
                            'where a.tenant_id = (select maim.tenant_id()))';
begin
    if not exists (select from pg_attribute
                   where attrelid = tbl and attname = 'agent_id' and attnotnull) then
        raise exception 'table % has no "agent_id text not null" column', tbl;
    end if;

    execute format('alter table %s enable row level security', tbl);
    execute format('alter table %s force row level security', tbl);
    execute format('grant select, insert, update, delete on %s to maim_app, maim_admin', tbl);
    execute format('grant select on %s to maim_tenant', tbl);

    execute format('create policy app_select on %s for select to maim_app using (%s)', tbl, mine);
    execute format('create policy app_insert on %s for insert to maim_app with check (%s)', tbl, mine);
    execute format('create policy app_update on %s for update to maim_app using (%s) with check (%s)',
                   tbl, mine, mine);
    execute format('create policy app_delete on %s for delete to maim_app using (%s)', tbl, mine);

    execute format('create policy tenant_select on %s for select to maim_tenant using (%s)',
                   tbl, tenant);

    execute format('create policy admin_select on %s for select to maim_admin using (true)', tbl);
    execute format('create policy admin_insert on %s for insert to maim_admin with check (true)', tbl);
    execute format('create policy admin_update on %s for update to maim_admin using (true) with check (true)',
                   tbl);
    execute format('create policy admin_delete on %s for delete to maim_admin using (true)', tbl);
end
$$;
grant execute on procedure maim.isolate_agent_table(regclass) to public;

do $$
declare
    r record;
begin
    for r in
        select p.polname, p.polrelid::regclass as tbl
        from pg_policy p
        where p.polroles = array['maim_app'::regrole::oid, 'maim_plugin'::regrole::oid]
    loop
        execute format('alter policy %I on %s to maim_app', r.polname, r.tbl);
    end loop;
    for r in
        select c.oid::regclass as tbl
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        cross join lateral aclexplode(c.relacl) a
        where n.nspname = 'public' and a.grantee = 'maim_plugin'::regrole
        group by c.oid
    loop
        execute format('revoke all on %s from maim_plugin', r.tbl);
    end loop;
end
$$;

revoke select on users, api_keys from maim_tenant;
grant select on users, api_keys to maim_tenant;

drop view api_key_list;
alter table api_keys add column last_used_at timestamptz,
                     add column usage_count bigint not null default 0 check (usage_count >= 0);
update api_keys k
   set last_used_at = u.last_used_at, usage_count = u.uses
  from (select key_id, max(last_used_at) as last_used_at, sum(uses)::bigint as uses
        from api_key_usage group by key_id) u
 where u.key_id = k.id;
create policy definer_update on api_keys for update to maim_owner using (true) with check (true);

revoke execute on function maim.open_key_scope(text) from maim_plugin;
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
    return set_config('maim.agent_id', agent, true);
end
$$;

create or replace function maim.resolve_api_key(key text)
    returns table (agent_id text, tenant_id text, key_id text, permissions text[])
    language sql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
    update public.api_keys k
       set last_used_at = now(), usage_count = k.usage_count + 1
      from public.agents a, public.tenants t
     where k.key_hash = sha256(convert_to(key, 'UTF8'))
       and k.status = 'active'
       and (k.expires_at is null or k.expires_at > now())
       and a.id = k.agent_id and a.status = 'active'
       and t.id = k.tenant_id and t.status = 'active'
    returning k.agent_id, k.tenant_id, k.id, k.permissions
$$;
drop table api_key_usage;

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

drop function maim.agent_proven(text);
drop function maim.scope_proof(text);
drop table maim.scope_secret;

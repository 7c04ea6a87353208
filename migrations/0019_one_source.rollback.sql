-- Back to 0018: the scope functions as the migrations left them (0012, 0016, 0017), with
-- 0018's grants, and without what only sql/30_policies.sql has. The last copy of these
-- bodies: from 0019 on they are edited in sql/, and a rollback of a later migration leaves
-- them as the checkout that runs it defines them.


create or replace function maim.on_citus() returns boolean
    language sql stable parallel safe
    set search_path = pg_catalog, pg_temp
as $$
    select exists (select from pg_catalog.pg_extension where extname = 'citus')
$$;

create or replace function maim.scope_proof(agent text) returns text
    language plpgsql stable parallel restricted
    set search_path = pg_catalog, pg_temp
as $$
declare
    bound text;
begin
    if maim.on_citus() then
        select t.initiator_node_identifier::text || '/' || t.transaction_number::text || '/'
               || extract(epoch from t.transaction_stamp)::text
        into bound
        from pg_catalog.get_current_transaction_id() t
        where t.transaction_number <> 0;
        if bound is null then
            return null;  -- no distributed transaction: nothing is proven
        end if;
    else
        bound := pg_backend_pid()::text || '/'
                 || extract(epoch from transaction_timestamp())::text;
    end if;
    return (select encode(sha256(s.outer_key || sha256(s.inner_key
                || convert_to(agent || '/' || bound, 'UTF8'))), 'hex')
            from maim.scope_secret s);
end
$$;

create or replace function maim.agent_proven(agent text) returns boolean
    language sql stable parallel restricted security definer
    set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sha256(convert_to(current_setting('maim.agent_proof', true), 'UTF8'))
                    = sha256(convert_to(maim.scope_proof(agent), 'UTF8')), false)
$$;

create or replace function maim.agent_tenant_id() returns pg_catalog.text
    language plpgsql stable parallel restricted
as $$
declare
    v pg_catalog.text := pg_catalog.current_setting('maim.agent_tenant', true);
begin
    if v operator(pg_catalog.<>) '' and pg_catalog.pg_has_role('maim_app', 'USAGE') then
        return v;
    end if;
    select a.tenant_id into v from public.agents a
    where a.id operator(pg_catalog.=) maim.agent_id();
    return v;
end
$$;

create or replace function maim.tenant_agent_ids() returns pg_catalog.text[]
    language plpgsql stable parallel safe
as $$
declare
    v pg_catalog.text := pg_catalog.current_setting('maim.tenant_agents', true);
begin
    if v is null or v operator(pg_catalog.=) '' then
        raise exception 'maim.tenant_agents is not set'
            using errcode = '42501',
                  hint = 'Open tenant scope with SELECT maim.open_tenant_scope(''tenant_...'') '
                      || 'inside the transaction (on Citus the policies read the agents it lists).';
    end if;
    return v::pg_catalog.text[];
end
$$;

create or replace function maim.tenant_owner_id() returns pg_catalog.text
    language plpgsql stable parallel safe
as $$
begin
    perform maim.tenant_agent_ids();  -- the same contract: opened by open_tenant_scope
    return nullif(pg_catalog.current_setting('maim.tenant_owner', true), '');
end
$$;

create or replace function maim.open_tenant_scope(tenant pg_catalog.text) returns pg_catalog.text
    language plpgsql volatile
as $$
declare
    owner  pg_catalog.text;
    agents pg_catalog.text[];
begin
    execute pg_catalog.format('set local maim.tenant_id = %L', tenant);
    select t.owner_id into owner from public.tenants t where t.id operator(pg_catalog.=) tenant;
    if not found then
        raise exception 'tenant % does not exist', tenant
            using errcode = '42501', hint = 'Create it first: maimdb tenant create NAME';
    end if;
    select coalesce(pg_catalog.array_agg(a.id order by a.id), '{}') into agents
    from public.agents a where a.tenant_id operator(pg_catalog.=) tenant;
    execute pg_catalog.format('set local maim.tenant_agents = %L', agents);
    execute pg_catalog.format('set local maim.tenant_owner = %L', coalesce(owner, ''));
    return tenant;
end
$$;

create or replace function maim.open_agent_scope(agent text) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    agent_status  text;
    tenant_status text;
    tenant        text;
begin
    select a.status, t.status, t.id into agent_status, tenant_status, tenant
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
    execute format('set local maim.agent_tenant = %L', tenant);
    execute format('set local maim.agent_id = %L', agent);
    return agent;
end
$$;

create or replace function maim.resolve_api_key(key text)
    returns table (agent_id text, tenant_id text, key_id text, permissions text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    k record;
begin
    select a.agent_id, a.tenant_id, a.id, a.permissions into k
    from public.api_keys a
    join public.agents g on g.id = a.agent_id
    join public.tenants t on t.id = a.tenant_id
    where a.key_hash = sha256(convert_to(key, 'UTF8'))
      and a.status = 'active'
      and (a.expires_at is null or a.expires_at > now())
      and g.status = 'active' and t.status = 'active';
    if not found then
        return;
    end if;
    insert into public.api_key_usage as u (key_id, backend, tenant_id, uses, last_used_at)
    values (k.id, pg_backend_pid(), k.tenant_id, 1, now())
    on conflict on constraint api_key_usage_pkey
        do update set uses = u.uses + 1, last_used_at = excluded.last_used_at;
    return query select k.agent_id, k.tenant_id, k.id, k.permissions;
end
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
    -- Citus gives a transaction its distributed id at the first remote work; an empty
    -- intermediate result (a file of the transaction, removed at its end) asks for it now.
    -- (Two statements: one server has no get_current_transaction_id to parse.)
    if maim.on_citus() then
        if (select t.transaction_number from pg_catalog.get_current_transaction_id() t) = 0 then
            perform pg_catalog.create_intermediate_result('maim_key_scope',
                                                          'select 1 where false');
        end if;
    end if;
    execute format('set local maim.key_permissions = %L', array_to_string(granted, ','));
    execute format('set local maim.agent_proof = %L', maim.scope_proof(agent));
    execute format('set local maim.agent_id = %L', agent);
    return agent;
end
$$;

create or replace procedure maim.isolate_agent_table(tbl regclass)
    language plpgsql
as $$
declare
    -- on Citus, the forms a shard can evaluate (maim_db/schema/citus.py)
    mine   constant text := case when maim.on_citus() then 'agent_id = maim.agent_id()'
                                 else 'agent_id = (select maim.agent_id())' end;
    tenant constant text := case when maim.on_citus()
                                 then 'agent_id = any (maim.tenant_agent_ids())'
                                 else 'agent_id in (select a.id from public.agents a '
                                      'where a.tenant_id = (select maim.tenant_id()))' end;
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

do $$
begin
    if maim.on_citus() then
        alter function maim.scope_proof(text) set citus.allow_nested_distributed_execution = on;
    end if;
end
$$;

revoke all on function maim.scope_proof(text) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;
revoke all on function maim.agent_proven(text) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;
grant execute on function maim.agent_proven(text) to maim_plugin, maim_tenant, maim_admin;
revoke all on function maim.open_agent_scope(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.open_agent_scope(text) to maim_app;
revoke all on function maim.resolve_api_key(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.resolve_api_key(text) to maim_app, maim_admin;
revoke all on function maim.open_key_scope(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.open_key_scope(text) to maim_app, maim_plugin;
revoke all on procedure maim.isolate_agent_table(regclass) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.on_citus(), maim.agent_tenant_id(), maim.tenant_agent_ids(),
    maim.tenant_owner_id(), maim.open_tenant_scope(pg_catalog.text) to public;

drop procedure maim.apply_policies(regclass, boolean);
drop function maim.policies(boolean);
drop function maim.policy_text(text, boolean);
comment on schema maim is null;

-- Definitions new since the hand-over (not in 0018): the web back end's login check
-- (sql/40_login.sql) and the policy it reads users through.
drop function if exists maim.check_login(text, text);
drop function if exists maim.login_setting(text);
drop policy if exists definer_select on users;
drop policy if exists definer_delete on api_key_usage;  -- the fold of api_key_usage (sql/20_scope.sql)

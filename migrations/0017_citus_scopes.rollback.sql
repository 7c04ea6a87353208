-- Back to 0016: the proof bound to the backend pid (0012), open_key_scope without Citus.
create or replace function maim.scope_proof(agent text) returns text
    language sql stable parallel restricted
    set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(s.outer_key || sha256(s.inner_key || convert_to(
               agent || '/' || pg_backend_pid()::text || '/'
               || extract(epoch from transaction_timestamp())::text, 'UTF8'))), 'hex')
    from maim.scope_secret s
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


drop function maim.on_citus();

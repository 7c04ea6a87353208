-- The one rule every agent-scoped table follows, written once.
--
--   call maim.isolate_agent_table('messages');
--
-- enables and forces row-level security, grants exactly the commands each role needs (never
-- TRUNCATE, REFERENCES or TRIGGER), and creates one policy per command and role:
--
--   maim_app     select/insert/update/delete  its own agent's rows    agent_id = maim.agent_id()
--   maim_tenant  select                       its tenant's agents' rows
--   maim_admin   select/insert/update/delete  every row
--
-- Writes carry WITH CHECK, so a row can neither be written into nor moved to another agent.
-- The table must have `agent_id text not null default maim.agent_id()
-- references agents (id) on delete cascade`; the function refuses a table without it.

create procedure maim.isolate_agent_table(tbl regclass)
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

comment on procedure maim.isolate_agent_table(regclass) is
    'RLS (enabled, forced), grants and per-command policies for an agent-scoped table.';

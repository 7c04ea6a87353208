-- Every row-level security policy of the schema, once, for one server and for Citus. Like
-- sql/20_scope.sql, `maimdb migrate` re-applies this file after the pending migrations of
-- every run once the database has migration 0019, and then brings every table's policies to
-- what maim.policies() declares (maim.apply_policies): a policy is edited here, never in a
-- migration, and review sees it as a diff of this file and of sql/schema.snapshot (one
-- server) and sql/schema.citus.snapshot (Citus). The rules themselves: docs/concepts.md.

-- The terms a policy is written with, in their two forms — the only place the forms differ.
-- One server: the scope as an InitPlan, `(select maim.agent_id())`, evaluated once per
-- statement, and a tenant's agents and owner as subqueries over the control plane. Citus: a
-- shard can hold no subquery and cannot read a control-plane table, so the same terms read
-- what the scope functions wrote when the scope opened (sql/20_scope.sql).
create or replace function maim.policy_text(template text, citus boolean) returns text
    language plpgsql immutable parallel safe
    set search_path = pg_catalog, pg_temp
as $$
declare
    term record;
    result text := template;
begin
    for term in
        select * from (values
            ('{agent}', '(select maim.agent_id())', 'maim.agent_id()'),
            ('{tenant}', '(select maim.tenant_id())', 'maim.tenant_id()'),
            ('{agent_tenant}', '(select maim.agent_tenant_id())', 'maim.agent_tenant_id()'),
            ('{in_tenant}', 'in (select a.id from public.agents a '
                            'where a.tenant_id = (select maim.tenant_id()))',
                            '= any (maim.tenant_agent_ids())'),
            ('{tenant_owner}', '(select t.owner_id from public.tenants t '
                               'where t.id = (select maim.tenant_id()))',
                               'maim.tenant_owner_id()')
        ) as t (name, one_server, on_citus)
    loop
        result := replace(result, term.name,
                          case when citus then term.on_citus else term.one_server end);
    end loop;
    if result ~ '\{\w+\}' then
        raise exception 'policy text "%" names a term maim.policy_text does not know', template;
    end if;
    return result;
end
$$;
revoke all on function maim.policy_text(text, boolean) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;

-- The policies: each rule a set of policies, each table the rules it follows. One policy per
-- command and role, named <role>_<command>. Every table of public with a NOT NULL agent_id
-- that is not listed below is an agent table (maim.isolate_agent_table), and so is every
-- such table of maibot1 (MaiBot 1.x's, migrations/0020), which holds no control plane.
create or replace function maim.policies(citus boolean)
    returns table (tbl regclass, policy name, command text, roles text, using_expr text,
                   check_expr text)
    language sql stable
    set search_path = pg_catalog, pg_temp
as $$
    with rule (rule, policy, command, roles, using_expr, check_expr) as (values
        -- maim_admin: every command on every table, stated per command (never BYPASSRLS)
        ('admin', 'admin_select', 'select', 'maim_admin', 'true', null),
        ('admin', 'admin_insert', 'insert', 'maim_admin', null, 'true'),
        ('admin', 'admin_update', 'update', 'maim_admin', 'true', 'true'),
        ('admin', 'admin_delete', 'delete', 'maim_admin', 'true', null),
        -- the roles that act inside one agent: its rows, written only as its rows
        ('agent', 'app_select', 'select', 'maim_app, maim_plugin', 'agent_id = {agent}', null),
        ('agent', 'app_insert', 'insert', 'maim_app, maim_plugin', null, 'agent_id = {agent}'),
        ('agent', 'app_update', 'update', 'maim_app, maim_plugin', 'agent_id = {agent}',
         'agent_id = {agent}'),
        ('agent', 'app_delete', 'delete', 'maim_app, maim_plugin', 'agent_id = {agent}', null),
        -- maim_tenant reads its tenant's rows: by the agents of an agent table, by tenant_id
        -- in the control plane
        ('tenant_agents', 'tenant_select', 'select', 'maim_tenant', 'agent_id {in_tenant}', null),
        ('tenant_rows', 'tenant_select', 'select', 'maim_tenant', 'tenant_id = {tenant}', null),
        -- maim_owner is under FORCE'd row-level security too: what the definer functions read
        ('definer_read', 'definer_select', 'select', 'maim_owner', 'true', null),
        -- the control plane's own
        ('users', 'tenant_select', 'select', 'maim_tenant', 'id = {tenant_owner}', null),
        ('tenants', 'tenant_select', 'select', 'maim_tenant', 'id = {tenant}', null),
        ('tenants', 'app_select', 'select', 'maim_app, maim_plugin', 'id = {agent_tenant}', null),
        ('agents', 'app_select', 'select', 'maim_app, maim_plugin', 'id = {agent}', null),
        ('plugin_settings', 'app_select', 'select', 'maim_app, maim_plugin',
         'tenant_id = {agent_tenant} and (agent_id is null or agent_id = {agent})', null),
        ('api_key_usage', 'admin_select', 'select', 'maim_admin', 'true', null),
        ('api_key_usage', 'definer_insert', 'insert', 'maim_owner', null, 'true'),
        ('api_key_usage', 'definer_update', 'update', 'maim_owner', 'true', 'true'),
        -- resolve_api_key folds the rows of backends that have ended (issue 32.7)
        ('api_key_usage', 'definer_delete', 'delete', 'maim_owner', 'true', null)
    ), control_plane (name, rules) as (values
        ('users', '{admin,users,definer_read}'),
        ('tenants', '{admin,tenants,definer_read}'),
        ('agents', '{admin,agents,tenant_rows,definer_read}'),
        ('api_keys', '{admin,tenant_rows,definer_read}'),
        ('api_key_usage', '{api_key_usage,tenant_rows,definer_read}'),
        ('api_key_usage_recent', '{api_key_usage,tenant_rows,definer_read}'),
        ('plugin_settings', '{admin,plugin_settings,tenant_rows}'),
        ('agent_active_states', '{admin,agent,tenant_rows}')
    ), tables (tbl, rules) as (
        select pg_catalog.to_regclass('public.' || c.name), c.rules::text[]
        from control_plane c
        union all
        select c.oid::regclass, '{admin,agent,tenant_agents}'::text[]
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        join pg_catalog.pg_attribute a on a.attrelid = c.oid
        where n.nspname in ('public', 'maibot1') and c.relkind = 'r'
          and a.attname = 'agent_id' and a.attnotnull and not a.attisdropped
          and not (n.nspname = 'public' and c.relname = any (select name from control_plane))
    )
    select t.tbl, r.policy::name, r.command, r.roles, maim.policy_text(r.using_expr, citus),
           maim.policy_text(r.check_expr, citus)
    from tables t join rule r on r.rule = any (t.rules)
    where t.tbl is not null
$$;
revoke all on function maim.policies(boolean) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;

-- Bring the policies of `one_table` (every declared table when null) to what maim.policies()
-- declares for this server (`citus` overrides: `maimdb snapshot --citus` renders the Citus
-- form on one server, in a transaction it rolls back). The declared text is first created
-- on an empty copy of the table, so that comparing it with the live policy depends on no
-- deparser's spelling, and a policy already as declared is left alone: ALTER POLICY locks
-- its table against every reader. Policies maim.policies() does not name are left as they
-- are; `maimdb audit` judges those.
create or replace procedure maim.apply_policies(one_table regclass default null,
                                                citus boolean default null)
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    form constant boolean := coalesce(citus, maim.on_citus());
    target regclass;
    probe regclass;
    p record;
    clauses text;
begin
    -- the declarations once (each row spells its terms), not once per table
    create temporary table maim_policy_declared on commit drop as
    select * from maim.policies(form) d where one_table is null or d.tbl = one_table;
    for target in select distinct d.tbl from pg_temp.maim_policy_declared d loop
        execute format('create temporary table maim_policy_probe (like %s)', target);
        probe := to_regclass('pg_temp.maim_policy_probe');
        for p in select * from pg_temp.maim_policy_declared d where d.tbl = target loop
            execute format('create policy %I on %s for %s to %s', p.policy, probe, p.command,
                           p.roles)
                || coalesce(' using (' || p.using_expr || ')', '')
                || coalesce(' with check (' || p.check_expr || ')', '');
        end loop;
        for p in
            select d.policy, d.command, d.roles, d.using_expr, d.check_expr,
                   l.polname is null as missing,
                   l.polcmd <> w.polcmd or not l.polpermissive as recreate,
                   array(select unnest(l.polroles) order by 1)
                       is distinct from array(select unnest(w.polroles) order by 1)
                   or pg_get_expr(l.polqual, l.polrelid)
                       is distinct from pg_get_expr(w.polqual, w.polrelid)
                   or pg_get_expr(l.polwithcheck, l.polrelid)
                       is distinct from pg_get_expr(w.polwithcheck, w.polrelid) as differs
            from pg_temp.maim_policy_declared d
            join pg_policy w on w.polrelid = probe and w.polname = d.policy
            left join pg_policy l on l.polrelid = target and l.polname = d.policy
            where d.tbl = target
        loop
            clauses := coalesce(' using (' || p.using_expr || ')', '')
                       || coalesce(' with check (' || p.check_expr || ')', '');
            if p.recreate then
                execute format('drop policy %I on %s', p.policy, target);
            end if;
            if p.missing or p.recreate then
                execute format('create policy %I on %s for %s to %s', p.policy, target,
                               p.command, p.roles) || clauses;
            elsif p.differs then
                execute format('alter policy %I on %s to %s', p.policy, target, p.roles)
                    || clauses;
            end if;
        end loop;
        execute format('drop table %s', probe);
    end loop;
    drop table pg_temp.maim_policy_declared;
end
$$;
revoke all on procedure maim.apply_policies(regclass, boolean) from public, maim_app,
    maim_tenant, maim_admin, maim_plugin;

-- The one rule every agent-scoped table follows:
--
--   call maim.isolate_agent_table('messages');
--
-- enables and forces row-level security, grants exactly the commands each role needs (never
-- TRUNCATE, REFERENCES or TRIGGER) and creates the table's policies as maim.policies()
-- declares them for an agent table: maim_app and maim_plugin their agent's rows (writes
-- WITH CHECK, so a row can neither be written into nor moved to another agent), maim_tenant
-- its tenant's agents' rows, maim_admin every row. On a Citus coordinator a new table with a
-- foreign key to agents is a Citus table the moment it is created, so its policies are in
-- the shard's form from the start. The table must have `agent_id text not null default
-- maim.agent_id() references agents (id) on delete cascade`; a table without it is refused.
create or replace procedure maim.isolate_agent_table(tbl regclass)
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    if not exists (select from pg_catalog.pg_attribute
                   where attrelid = tbl and attname = 'agent_id' and attnotnull) then
        raise exception 'table % has no "agent_id text not null" column', tbl;
    end if;
    execute format('alter table %s enable row level security', tbl);
    execute format('alter table %s force row level security', tbl);
    execute format('grant select, insert, update, delete on %s to maim_app, maim_plugin, '
                   'maim_admin', tbl);
    execute format('grant select on %s to maim_tenant', tbl);
    call maim.apply_policies(tbl);
end
$$;
revoke all on procedure maim.isolate_agent_table(regclass) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;

call maim.apply_policies();

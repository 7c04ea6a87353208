-- Issue 16, what Citus needs of the scope functions: a key scope's proof a worker can check,
-- and agent tables created on a coordinator with policies a shard can evaluate (at the end).
--
-- 0012 binds the proof to the backend pid and the transaction's start: on a worker both are
-- the worker's own, so every maim_plugin statement on a shard was refused. On Citus the
-- proof binds instead to the distributed transaction id — (initiator node, transaction
-- number, stamp), which the coordinator assigns and sends to every worker the transaction
-- touches. open_key_scope makes sure the transaction has one before it proves (Citus assigns
-- it only at the first remote work otherwise). A proof copied out of one transaction proves
-- nothing in the next: the number is never reused and the stamp is the transaction's. The
-- coordinator does not let a scope role assign an id of its choosing (maimdb migrate revokes
-- assign_distributed_transaction_id from PUBLIC there; maim_db/schema/citus.py). On one server
-- nothing changes.

create function maim.on_citus() returns boolean
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
revoke all on function maim.scope_proof(text) from public;

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

-- Agent tables made from now on (0002, 0012): on a Citus coordinator a new table with a
-- foreign key to agents is a Citus table the moment it is created, so its policies must
-- already be in the form a shard evaluates; on one server, as before.
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


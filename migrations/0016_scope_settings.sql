-- Issue 16: every fact a policy needs travels with the scope, as a transaction-local setting.
--
-- On a Citus cluster a policy runs on the shard, on a worker, where it can read neither a
-- table of the control plane ("a distributed query from a query on a shard" is refused) nor
-- a setting made with set_config() (Citus sends a worker only `SET LOCAL` commands). So the
-- scope functions now write their settings with `SET LOCAL` (run by EXECUTE: ~1 µs more per
-- scope than set_config, measured) and also write down what the policies would otherwise
-- look up: the agent's tenant, and for a tenant scope its agents and its owner. On one
-- server the policies keep their subqueries (one InitPlan per statement); on Citus
-- `maimdb migrate` rewrites them to read these settings before it distributes a table
-- (maim_db/schema/citus.py). The functions below are the same on both.

-- The agent's tenant (0001, 0012): from the scope when open_agent_scope wrote it and the
-- caller holds maim_app's privileges (trusted with any agent, so with its tenant too);
-- otherwise looked up, as before — a key scope's tenant is never taken from a setting.
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

-- A tenant scope's agents and owner, as open_tenant_scope wrote them. Unset is an error,
-- never a silent zero rows: on Citus the tenant policies read these.
create function maim.tenant_agent_ids() returns pg_catalog.text[]
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

create function maim.tenant_owner_id() returns pg_catalog.text
    language plpgsql stable parallel safe
as $$
begin
    perform maim.tenant_agent_ids();  -- the same contract: opened by open_tenant_scope
    return nullif(pg_catalog.current_setting('maim.tenant_owner', true), '');
end
$$;

-- Tenant scope: invoker rights on purpose. It sets the tenant first and then reads, under
-- the caller's own policies, only what that tenant may see: its row and its agents. An
-- unknown tenant is an error, not a scope that sees nothing.
create function maim.open_tenant_scope(tenant pg_catalog.text) returns pg_catalog.text
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

-- The definer functions of 0012, their settings written with SET LOCAL.
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

-- Key resolution (0012) in PL/pgSQL: Citus cannot plan a SQL-language function's statements
-- that take its parameters and touch a Citus table (api_keys is a reference table there).
-- The same steps: find the active key of an active agent and tenant, count its use in this
-- backend's own row.
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

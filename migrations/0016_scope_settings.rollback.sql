-- Back to 0015: the scope functions of 0012 (set_config), no tenant-scope settings.
drop function maim.open_tenant_scope(pg_catalog.text);
drop function maim.tenant_owner_id();
drop function maim.tenant_agent_ids();

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

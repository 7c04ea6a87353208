-- Access: opening agent scope checks that the agent and its tenant are active, and API keys
-- resolve to an agent inside the database. Both are SECURITY DEFINER functions owned by
-- maim_owner; the policies below are the only rows maim_owner itself may touch under the
-- FORCE'd row-level security, and only these functions act as maim_owner at run time.

-- Rotation keeps the old key valid for a grace period under the same name, so a name is
-- unique among the keys that have not been replaced.
alter table api_keys add column replaced_by text references api_keys (id) on delete set null;
alter table api_keys drop constraint api_keys_tenant_id_name_key;
create unique index api_keys_tenant_name on api_keys (tenant_id, name) where replaced_by is null;

create policy definer_select on tenants for select to maim_owner using (true);
create policy definer_select on agents for select to maim_owner using (true);
create policy definer_select on api_keys for select to maim_owner using (true);
create policy definer_update on api_keys for update to maim_owner using (true) with check (true);

-- Open agent scope for `agent`, refusing an unknown, suspended or archived agent, or one
-- whose tenant is not active. `connect(agent_id=...)` calls this in its scope statement.
create function maim.open_agent_scope(agent text) returns text
    language plpgsql volatile security definer
    set search_path = ''
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

-- Resolve an API key to its agent and record the use. Unknown, malformed, revoked, expired
-- and suspended all come back as no row, through the same single index probe on the hash.
create function maim.resolve_api_key(key text)
    returns table (agent_id text, tenant_id text, key_id text, permissions text[])
    language sql volatile security definer
    set search_path = ''
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

-- Open agent scope from an API key: the only way an untrusted caller gets an agent.
create function maim.open_key_scope(key text) returns text
    language plpgsql volatile security definer
    set search_path = ''
as $$
declare
    agent text;
begin
    select r.agent_id into agent from maim.resolve_api_key(key) r;
    if agent is null then
        raise exception 'invalid API key'
            using errcode = '28000',
                  hint = 'The key is unknown, revoked, expired, or its agent or tenant is suspended.';
    end if;
    return set_config('maim.agent_id', agent, true);
end
$$;

revoke all on function maim.open_agent_scope(text) from public;
revoke all on function maim.resolve_api_key(text) from public;
revoke all on function maim.open_key_scope(text) from public;
grant execute on function maim.open_agent_scope(text) to maim_app;
grant execute on function maim.resolve_api_key(text) to maim_app, maim_admin;
grant execute on function maim.open_key_scope(text) to maim_app;

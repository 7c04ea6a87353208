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


drop function maim.on_citus();

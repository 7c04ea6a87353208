-- 0006's open_key_scope: the agent only.
create or replace function maim.open_key_scope(key text) returns text
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

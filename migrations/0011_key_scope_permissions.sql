-- A scope opened from an API key carries the key's permissions: open_key_scope records them
-- in the transaction-local setting maim.key_permissions (comma-separated), and the scope
-- statement reads them back in the same round trip (maim_db/scope.py), so a block can check
-- them (`db.require("config_write")`) without asking again. Like maim.agent_id, the setting
-- ends with the transaction. Same signature and grants as 0006.
create or replace function maim.open_key_scope(key text) returns text
    language plpgsql volatile security definer
    set search_path = ''
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
    return set_config('maim.agent_id', agent, true);
end
$$;

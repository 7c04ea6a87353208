-- Undo 0001. Tables go first: their policies, defaults and triggers depend on the functions.
drop policy tenant_select on users;  -- it reads tenants
drop table plugin_settings;
drop table agent_active_states;
drop function maim.set_expires_at();
drop table api_keys;
drop table agents;
drop table tenants;
drop function maim.agent_tenant_id();
drop table users;

-- Undo 0022: the recent uses are moved into api_key_usage first (none is lost) and the view
-- adds up api_key_usage alone again. maim.resolve_api_key still names the table dropped
-- here until the older release's `maimdb migrate` re-applies its own definition, which
-- counts every use in api_key_usage (docs/conventions.md, "Rollbacks"): run it next. The
-- definitions this release added (maim.define_on_citus, sql/20_scope.sql; maim.no_temp_objects,
-- sql/10_helpers.sql) are dropped here: the older release has no use for them, and 0019's
-- rollback, which names such definitions, shipped before them and cannot change.

-- On Citus the move below runs on every shard at once, after which Citus refuses the function
-- command further down in the same transaction unless it runs over one connection per node.
do $$
begin
    if maim.on_citus() then
        set local citus.multi_shard_modify_mode = 'sequential';
    end if;
end
$$;

insert into public.api_key_usage as u (key_id, backend, tenant_id, uses, last_used_at)
select r.key_id, r.backend, r.tenant_id, r.uses, r.last_used_at
from public.api_key_usage_recent r where r.uses > 0
on conflict on constraint api_key_usage_pkey
    do update set uses = u.uses + excluded.uses,
                  last_used_at = greatest(u.last_used_at, excluded.last_used_at);

create or replace view api_key_list with (security_invoker = true) as
select k.id, k.tenant_id, k.agent_id, k.name, k.description, k.key_prefix, k.permissions,
       k.status, k.expires_at, k.created_at, k.updated_at, k.replaced_by,
       coalesce(u.uses, 0)::bigint as usage_count, u.last_used_at
from public.api_keys k
left join (select s.key_id, sum(s.uses) as uses, max(s.last_used_at) as last_used_at
           from public.api_key_usage s group by s.key_id) u on u.key_id = k.id;
grant select on api_key_list to maim_tenant, maim_admin;

drop function maim.api_key_uses();
drop table api_key_usage_recent;
drop procedure if exists maim.define_on_citus(boolean);
drop function if exists maim.no_temp_objects();

-- Undo 0021: api_key_list adds the uses up in a LATERAL subquery again. On Citus the table
-- is made a reference table again first, as the release before expects it (its migrate
-- skips a table already distributed, and Citus cannot plan that view over a distributed
-- one); its foreign key is dropped and made again around the conversion, which Citus
-- refuses while it ties the table to another reference table, and row-level security is
-- not forced on it meanwhile (the owner's COPY moves the rows).

do $$
begin
    if maim.on_citus() then
        if exists (select from pg_catalog.pg_dist_partition
                   where logicalrelid = 'public.api_key_usage'::regclass
                     and partmethod = 'h') then
            alter table public.api_key_usage drop constraint api_key_usage_key_id_fkey;
            -- Citus moves the rows by COPY, which forced row-level security refuses
            alter table public.api_key_usage no force row level security;
            perform pg_catalog.undistribute_table('public.api_key_usage');
            perform pg_catalog.create_reference_table('public.api_key_usage');
            perform pg_catalog.truncate_local_data_after_distributing_table(
                'public.api_key_usage');
            alter table public.api_key_usage force row level security;
            alter table public.api_key_usage add constraint api_key_usage_key_id_fkey
                foreign key (key_id) references public.api_keys (id) on delete cascade;
        end if;
    end if;
end
$$;

create or replace view api_key_list with (security_invoker = true) as
select k.id, k.tenant_id, k.agent_id, k.name, k.description, k.key_prefix, k.permissions,
       k.status, k.expires_at, k.created_at, k.updated_at, k.replaced_by,
       coalesce(u.uses, 0)::bigint as usage_count, u.last_used_at
from public.api_keys k
left join lateral (select sum(s.uses) as uses, max(s.last_used_at) as last_used_at
                   from public.api_key_usage s where s.key_id = k.id) u on true;
grant select on api_key_list to maim_tenant, maim_admin;  -- Citus drops them in a conversion

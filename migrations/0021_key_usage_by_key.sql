-- Issue 32: on Citus, one key block left open stalled every other key block of every tenant.
--
-- Every key block counts its use in api_key_usage, which Citus made a reference table (the
-- control plane's kind); Citus serializes every UPDATE, upsert and DELETE of a reference
-- table with an ExclusiveLock on its one shard (taken on the first worker, out of reach of
-- the block's lock timeout) and holds it to commit. `maimdb migrate` now distributes the
-- table by key_id instead (maim_db/schema/citus.BY_KEY): a single-shard write to a table
-- with one replica takes no lock but the row's own.
--
-- What that needs of the schema, on every server: api_key_list added each key's uses up in
-- a LATERAL subquery, which Citus cannot plan with a distributed table inside and a
-- reference table outside. It now joins the uses grouped by key: the same rows and columns
-- (PostgreSQL carries a `k.id = …` filter into the grouped side, so reading one key still
-- reads that key's rows alone). On one server nothing else changes.

create or replace view api_key_list with (security_invoker = true) as
select k.id, k.tenant_id, k.agent_id, k.name, k.description, k.key_prefix, k.permissions,
       k.status, k.expires_at, k.created_at, k.updated_at, k.replaced_by,
       coalesce(u.uses, 0)::bigint as usage_count, u.last_used_at
from public.api_keys k
left join (select s.key_id, sum(s.uses) as uses, max(s.last_used_at) as last_used_at
           from public.api_key_usage s group by s.key_id) u on u.key_id = k.id;
-- Citus re-creates a view over a table it converts without the view's grants; migrate
-- grants back what it found, and this keeps a view a rollback left bare granted as well.
grant select on api_key_list to maim_tenant, maim_admin;

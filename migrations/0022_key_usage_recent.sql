-- Issue 36: a key block that only reads no longer waits for a disk flush at commit.
--
-- Every key block counts its use (maim.resolve_api_key, sql/20_scope.sql). Written to
-- api_key_usage, a logged table, that count was the only WAL of a block that only reads, so
-- each such block paid a WAL flush at commit: measured on an fsync'd server, 2,048 µs per
-- transaction against 536 without the write (3.8 x).
--
-- Uses are now counted first in api_key_usage_recent: an UNLOGGED table, whose writes make
-- no WAL, so a block that writes nothing else commits without a flush (its commit record is
-- written, not waited for: what synchronous_commit = off does, for the count alone). A use
-- moves into api_key_usage at the first use of the key 10 s or more after it was counted (by
-- its backend, or by the next backend's first use once that one has ended): that block, and
-- only that one, waits for the flush. A crash (not a clean shutdown) empties an unlogged
-- table and loses the uses not yet moved, never a moved one; docs/control-plane.md, "How
-- durable a key's count is", says how many. A standby cannot read an unlogged table: read
-- api_key_list on the primary.
--
-- The same columns as api_key_usage, plus `since` (when the backend began counting what
-- `uses` holds), the same row-level security (sql/30_policies.sql) and on Citus the same
-- distribution, co-located with api_key_usage (maim_db/schema/citus.BY_KEY). api_key_list
-- adds up both (maim.api_key_uses).
create unlogged table api_key_usage_recent (
    key_id       text        not null references api_keys (id) on delete cascade,
    backend      integer     not null,  -- the pid that counted these uses
    tenant_id    text        not null,
    uses         bigint      not null check (uses >= 0),  -- 0: all moved to api_key_usage
    last_used_at timestamptz not null,
    since        timestamptz not null,
    primary key (key_id, backend)
);
alter table api_key_usage_recent enable row level security;
alter table api_key_usage_recent force row level security;
grant select on api_key_usage_recent to maim_tenant, maim_admin;

-- Each key's uses, added up over both tables, read with the caller's rights (so under the
-- caller's row-level security). A function of its own, not a join in the view: on Citus a
-- query that joins the reference table api_keys with two distributed tables makes the
-- coordinator connect to itself as the caller, which a tenant or admin role may not; in a
-- function the two tables are read by a query of their own, which Citus runs on the shards.
create function maim.api_key_uses()
    returns table (key_id text, uses numeric, last_used_at timestamptz)
    language sql stable
    set search_path = pg_catalog, pg_temp
as $$
    select s.key_id, sum(s.uses), max(s.last_used_at)
    from (select d.key_id, d.uses, d.last_used_at from public.api_key_usage d
          union all
          select r.key_id, r.uses, r.last_used_at from public.api_key_usage_recent r) s
    group by s.key_id
$$;
revoke all on function maim.api_key_uses() from public;
grant execute on function maim.api_key_uses() to maim_tenant, maim_admin;

create or replace view api_key_list with (security_invoker = true) as
select k.id, k.tenant_id, k.agent_id, k.name, k.description, k.key_prefix, k.permissions,
       k.status, k.expires_at, k.created_at, k.updated_at, k.replaced_by,
       coalesce(u.uses, 0)::bigint as usage_count, u.last_used_at
from public.api_keys k
left join maim.api_key_uses() u on u.key_id = k.id;
grant select on api_key_list to maim_tenant, maim_admin;

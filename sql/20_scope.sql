-- The scope functions: how a transaction gets its agent or tenant, and what the policies read
-- of it. Each is defined here once, with its grants beside it; `maimdb migrate` re-applies
-- this file after the pending migrations of every run, once the database has migration 0019
-- (docs/conventions.md, "Scope functions and policies"). Change a function by editing it
-- here: review sees the diff of that function, and sql/schema.snapshot the result. A change
-- of a signature or return type is the one thing that still needs a migration (drop the old
-- one there). Each grant list is the whole list: revoke from every maim role, then grant.
--
-- A SECURITY DEFINER function runs as maim_owner: `set search_path = pg_catalog, pg_temp`
-- (pg_temp last, so a caller's temporary objects never shadow a name; migrations/0012); every
-- table and maim function is qualified, builtins resolve in pg_catalog, first on the path.

-- Is this database a Citus node? The scope functions and the policies take the form a shard
-- can evaluate there (sql/30_policies.sql). Answered when `maimdb migrate` applies this file
-- (a Citus node has its extension before it is migrated, docs/scaling.md, and migrate runs
-- again whenever one is made a node), so the answer is a constant the planner folds: every
-- key scope asks twice, and as a query it cost about what a one-row read costs (issue 36).
-- `maimdb snapshot --citus` calls the procedure with true, in a transaction it rolls back.
create or replace procedure maim.define_on_citus(answer boolean)
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
begin
    execute format('create or replace function maim.on_citus() returns boolean'
                   ' language sql immutable parallel safe as %L', 'select ' || answer);
end
$$;
revoke all on procedure maim.define_on_citus(boolean) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
do $$
declare
    citus constant boolean := exists (select from pg_catalog.pg_extension e
                                      where e.extname operator(pg_catalog.=) 'citus');
begin
    call maim.define_on_citus(citus);
end
$$;
grant execute on function maim.on_citus() to public;

-- The proof that this transaction holds `agent` (docs/concepts.md, "How an agent scope is
-- proven"): an NMAC-style hash over two independent secret keys of (agent, what binds it to
-- one transaction). On one server that is the backend pid, the transaction's start and its
-- transaction id: transactions sent in one simple-query message share their start (taken
-- from the message), so the start alone let a proof carried over prove the next one (issue
-- 32.7). A key scope has its id already (resolve_api_key writes its usage row); in any other
-- transaction asking assigns a fresh one, which no earlier proof can name. On Citus the
-- distributed transaction id, which every worker the transaction touches knows
-- (migrations/0017). No distributed transaction: nothing is proven. Parallel restricted: a
-- parallel worker has another pid. Callable only by its owner: maim.agent_proven and
-- maim.open_key_scope call it.
create or replace function maim.scope_proof(agent text) returns text
    language plpgsql stable parallel restricted
    set search_path = pg_catalog, pg_temp
as $$
declare
    bound text;
    mark  text;
begin
    if maim.on_citus() then
        select t.initiator_node_identifier::text || '/' || t.transaction_number::text || '/'
               || extract(epoch from t.transaction_stamp)::text
        into bound
        from pg_catalog.get_current_transaction_id() t
        where t.transaction_number <> 0;
        if bound is null then
            return null;  -- no distributed transaction: nothing is proven
        end if;
        -- On a worker, only in a transaction Citus began with NOT DEFERRABLE named, as it
        -- does for a coordinator transaction begun so (a key block is): an id a statement
        -- assigned itself, in a transaction begun without BEGIN, proves nothing. Nothing
        -- inside a statement can make transaction_deferrable's source 'session' (PostgreSQL
        -- refuses to set it after the first snapshot, even to its own value). pg_settings is
        -- read once per worker transaction; then a mark under the secret says it was.
        if exists (select from pg_catalog.pg_dist_local_group g where g.groupid <> 0) then
            select encode(sha256(s.outer_key || sha256(s.inner_key
                       || convert_to('begun/' || bound, 'UTF8'))), 'hex')
            into mark from maim.scope_secret s;
            if current_setting('maim.proof_begun', true) is distinct from mark then
                if (select g.source from pg_catalog.pg_settings g
                    where g.name = 'transaction_deferrable') is distinct from 'session' then
                    return null;
                end if;
                perform pg_catalog.set_config('maim.proof_begun', mark, true);
            end if;
        end if;
    else
        bound := pg_backend_pid()::text || '/'
                 || extract(epoch from transaction_timestamp())::text || '/'
                 || pg_catalog.pg_current_xact_id()::text;
    end if;
    return (select encode(sha256(s.outer_key || sha256(s.inner_key
                || convert_to(agent || '/' || bound, 'UTF8'))), 'hex')
            from maim.scope_secret s);
end
$$;
revoke all on function maim.scope_proof(text) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;
-- On Citus its read of maim.scope_secret (a reference table) runs inside a shard's policy,
-- which Citus allows only when asked to.
do $$
begin
    if maim.on_citus() then
        alter function maim.scope_proof(text) set citus.allow_nested_distributed_execution = on;
    end if;
end
$$;

-- Does this transaction's maim.agent_proof prove `agent`? Hashing both sides before
-- comparing keeps the comparison's timing independent of how much of a guess was right.
-- maim.agent_id() calls it for every role without maim_app's privileges.
create or replace function maim.agent_proven(agent text) returns boolean
    language sql stable parallel restricted security definer
    set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sha256(convert_to(current_setting('maim.agent_proof', true), 'UTF8'))
                    = sha256(convert_to(maim.scope_proof(agent), 'UTF8')), false)
$$;
revoke all on function maim.agent_proven(text) from public, maim_app, maim_tenant, maim_admin,
    maim_plugin;
grant execute on function maim.agent_proven(text) to maim_plugin, maim_tenant, maim_admin;

-- The agent's tenant: from the scope when open_agent_scope wrote it and the caller holds
-- maim_app's privileges (trusted with any agent, so with its tenant too); otherwise looked
-- up — a key scope's tenant is never taken from a setting. Invoker rights.
create or replace function maim.agent_tenant_id() returns pg_catalog.text
    language plpgsql stable parallel restricted
as $$
declare
    v pg_catalog.text := pg_catalog.current_setting('maim.agent_tenant', true);
begin
    if v operator(pg_catalog.<>) '' and pg_catalog.pg_has_role('maim_app', 'USAGE') then
        return v;
    end if;
    select a.tenant_id into v from public.agents a
    where a.id operator(pg_catalog.=) maim.agent_id();
    return v;
end
$$;
grant execute on function maim.agent_tenant_id() to public;

-- A tenant scope's agents and owner, as open_tenant_scope wrote them. Unset is an error,
-- never a silent zero rows: on Citus the tenant policies read these.
create or replace function maim.tenant_agent_ids() returns pg_catalog.text[]
    language plpgsql stable parallel safe
as $$
declare
    v pg_catalog.text := pg_catalog.current_setting('maim.tenant_agents', true);
begin
    if v is null or v operator(pg_catalog.=) '' then
        raise exception 'maim.tenant_agents is not set'
            using errcode = '42501',
                  hint = 'Open tenant scope with SELECT maim.open_tenant_scope(''tenant_...'') '
                      || 'inside the transaction (on Citus the policies read the agents it lists).';
    end if;
    return v::pg_catalog.text[];
end
$$;
grant execute on function maim.tenant_agent_ids() to public;

create or replace function maim.tenant_owner_id() returns pg_catalog.text
    language plpgsql stable parallel safe
as $$
begin
    perform maim.tenant_agent_ids();  -- the same contract: opened by open_tenant_scope
    -- not nullif: its `=` would be looked up through the caller's search_path
    return case when pg_catalog.current_setting('maim.tenant_owner', true)
                         operator(pg_catalog.<>) ''
                then pg_catalog.current_setting('maim.tenant_owner', true) end;
end
$$;
grant execute on function maim.tenant_owner_id() to public;

-- Tenant scope: invoker rights on purpose. It sets the tenant first and then reads, under
-- the caller's own policies, only what that tenant may see: its row and its agents. An
-- unknown tenant is an error, not a scope that sees nothing. Settings are written with SET
-- LOCAL, the only kind Citus sends to the workers (migrations/0016).
create or replace function maim.open_tenant_scope(tenant pg_catalog.text) returns pg_catalog.text
    language plpgsql volatile
as $$
declare
    owner  pg_catalog.text;
    agents pg_catalog.text[];
begin
    execute pg_catalog.format('set local maim.tenant_id = %L', tenant);
    select t.owner_id into owner from public.tenants t where t.id operator(pg_catalog.=) tenant;
    if not found then
        raise exception 'tenant % does not exist', tenant
            using errcode = '42501', hint = 'Create it first: maimdb tenant create NAME';
    end if;
    select coalesce(pg_catalog.array_agg(a.id order by a.id), '{}') into agents
    from public.agents a where a.tenant_id operator(pg_catalog.=) tenant;
    execute pg_catalog.format('set local maim.tenant_agents = %L', agents);
    execute pg_catalog.format('set local maim.tenant_owner = %L', coalesce(owner, ''));
    return tenant;
end
$$;
grant execute on function maim.open_tenant_scope(pg_catalog.text) to public;

-- Open agent scope for `agent`, refusing an unknown, suspended or archived agent, or one
-- whose tenant is not active. `connect(agent_id=...)` calls this in its scope statement. It
-- also writes the agent's tenant, which the policies read on Citus. The settings are written
-- with SET LOCAL only where Citus is loaded (its setting exists), the one form Citus sends to
-- the workers; elsewhere with set_config(..., true), the same transaction-local setting
-- without parsing a statement per call (a fifth of the scope statement's cost, issue 36).
create or replace function maim.open_agent_scope(agent text) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    agent_status  text;
    tenant_status text;
    tenant        text;
begin
    select a.status, t.status, t.id into agent_status, tenant_status, tenant
    from public.agents a join public.tenants t on t.id = a.tenant_id
    where a.id = agent;
    -- one test on the path every block takes; which refusal, only when refused
    if agent_status is distinct from 'active' or tenant_status is distinct from 'active' then
        if agent_status is null then
            raise exception 'agent % does not exist', agent
                using errcode = '42501', hint = 'Create it first: maimdb agent create NAME --tenant TENANT_ID';
        elsif agent_status <> 'active' then
            raise exception 'agent % is %', agent, agent_status
                using errcode = '42501', hint = 'Reactivate it: maimdb agent activate ' || agent;
        else
            raise exception 'the tenant of agent % is %', agent, tenant_status
                using errcode = '42501', hint = 'Reactivate the tenant: maimdb tenant activate TENANT_ID';
        end if;
    end if;
    if pg_catalog.current_setting('citus.propagate_set_commands', true) is null then
        -- assignments, not PERFORM: evaluated as expressions, with no query run for them
        tenant := pg_catalog.set_config('maim.agent_tenant', tenant, true);
        agent := pg_catalog.set_config('maim.agent_id', agent, true);
    else
        execute format('set local maim.agent_tenant = %L', tenant);
        execute format('set local maim.agent_id = %L', agent);
    end if;
    return agent;
end
$$;
revoke all on function maim.open_agent_scope(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.open_agent_scope(text) to maim_app;

-- Resolve an API key to its agent, and count the use. Unknown, malformed, revoked, expired
-- and suspended all come back as no row. PL/pgSQL: Citus cannot plan a SQL-language
-- function's statements that take its parameters and touch a Citus table.
--
-- Each backend counts its uses of a key in its own row, so no two transactions wait for each
-- other to record one: first in api_key_usage_recent, which is unlogged (migrations/0022), so
-- a key block that writes nothing else commits without waiting for a WAL flush; a use 10 s
-- or more after its backend began counting moves the recent count into its api_key_usage row,
-- which a crash keeps (docs/control-plane.md, "How durable a key's count is"). Other uses
-- update the recent row alone.
--
-- A backend's first use of a key folds the rows of backends that have ended (their pid is no
-- longer a backend's), of both tables, into its own, so a key has at most one row per live
-- backend that used it in each, plus the ones being folded, and no use is lost (issue 32.7).
-- SKIP LOCKED: a row another first use is folding is left to it, so first uses never wait
-- for each other either. A dead backend's pid taken by a new backend keeps its rows and
-- counts on.
create or replace function maim.resolve_api_key(key text)
    returns table (agent_id text, tenant_id text, key_id text, permissions text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    k       record;
    me      integer := pg_catalog.pg_backend_pid();
    counted record;
    live    integer[];
    gone    integer[];
    folded  bigint;
    moved   bigint;
    oldest  timestamptz;
    latest  timestamptz;
    r       record;
begin
    select a.agent_id, a.tenant_id, a.id, a.permissions into k
    from public.api_keys a
    join public.agents g on g.id = a.agent_id
    join public.tenants t on t.id = a.tenant_id
    where a.key_hash = sha256(convert_to(key, 'UTF8'))
      and a.status = 'active'
      and (a.expires_at is null or a.expires_at > now())
      and g.status = 'active' and t.status = 'active';
    if not found then
        return;
    end if;
    update public.api_key_usage_recent u set uses = u.uses operator(pg_catalog.+) 1,
                                             last_used_at = pg_catalog.now()
    where u.key_id operator(pg_catalog.=) k.id and u.backend operator(pg_catalog.=) me
    returning u.uses, u.since into counted;
    if found then
        if counted.since operator(pg_catalog.<)
                (pg_catalog.now() operator(pg_catalog.-) interval '10 seconds') then
            -- the recent uses become durable: this block waits for the flush, once
            insert into public.api_key_usage as u (key_id, backend, tenant_id, uses,
                                                   last_used_at)
            values (k.id, me, k.tenant_id, counted.uses, pg_catalog.now())
            on conflict on constraint api_key_usage_pkey
                do update set uses = u.uses operator(pg_catalog.+) excluded.uses,
                              last_used_at = excluded.last_used_at;
            update public.api_key_usage_recent u set uses = 0, since = pg_catalog.now()
            where u.key_id operator(pg_catalog.=) k.id and u.backend operator(pg_catalog.=) me;
        end if;
        return query select k.agent_id, k.tenant_id, k.id, k.permissions;
        return;
    end if;
    -- This backend's first use of the key. Who is alive now, not at this transaction's
    -- first look (PostgreSQL keeps that view, and a live backend's row must never be folded
    -- and locked).
    perform pg_catalog.pg_stat_clear_snapshot();
    live := array(select a.pid from pg_catalog.pg_stat_get_activity(null) a
                  where a.pid is not null);
    -- Ended backends' recent uses: into this backend's rows, counting from the oldest
    -- `since` among them, so uses that a backend ended without moving still become durable
    -- 10 s after they were counted (at the next use of the key), not 10 s after each new
    -- backend's first use (a connection per use would never have moved any).
    gone := '{}';
    folded := 0;
    for r in select u.backend, u.uses, u.since from public.api_key_usage_recent u
             where u.key_id operator(pg_catalog.=) k.id
               and u.backend operator(pg_catalog.<>) all (live)
             for update skip locked
    loop
        gone := gone operator(pg_catalog.||) r.backend;
        folded := folded operator(pg_catalog.+) r.uses;
        oldest := least(oldest, r.since);
    end loop;
    if pg_catalog.cardinality(gone) operator(pg_catalog.>) 0 then
        delete from public.api_key_usage_recent u
        where u.key_id operator(pg_catalog.=) k.id
          and u.backend operator(pg_catalog.=) any (gone);
    end if;
    if oldest operator(pg_catalog.<)
            (pg_catalog.now() operator(pg_catalog.-) interval '10 seconds') then
        moved := folded operator(pg_catalog.+) 1;  -- durable now, with this use
        oldest := null;
    else
        moved := 0;
    end if;
    insert into public.api_key_usage_recent as u (key_id, backend, tenant_id, uses,
                                                  last_used_at, since)
    values (k.id, me, k.tenant_id,
            folded operator(pg_catalog.+) 1 operator(pg_catalog.-) moved, pg_catalog.now(),
            coalesce(oldest, pg_catalog.now()))
    on conflict on constraint api_key_usage_recent_pkey
        do update set uses = u.uses operator(pg_catalog.+) excluded.uses,
                      last_used_at = excluded.last_used_at;
    -- ended backends' durable uses, and those just moved: into this backend's durable row
    gone := '{}';
    folded := moved;
    if moved operator(pg_catalog.>) 0 then
        latest := pg_catalog.now();
    end if;
    for r in select u.backend, u.uses, u.last_used_at from public.api_key_usage u
             where u.key_id operator(pg_catalog.=) k.id
               and u.backend operator(pg_catalog.<>) all (live)
             for update skip locked
    loop
        gone := gone operator(pg_catalog.||) r.backend;
        folded := folded operator(pg_catalog.+) r.uses;
        latest := greatest(latest, r.last_used_at);
    end loop;
    if pg_catalog.cardinality(gone) operator(pg_catalog.>) 0 then
        delete from public.api_key_usage u
        where u.key_id operator(pg_catalog.=) k.id
          and u.backend operator(pg_catalog.=) any (gone);
    end if;
    if folded operator(pg_catalog.>) 0 then
        insert into public.api_key_usage as u (key_id, backend, tenant_id, uses, last_used_at)
        values (k.id, me, k.tenant_id, folded, latest)
        on conflict on constraint api_key_usage_pkey
            do update set uses = u.uses operator(pg_catalog.+) excluded.uses,
                          last_used_at = greatest(u.last_used_at, excluded.last_used_at);
    end if;
    return query select k.agent_id, k.tenant_id, k.id, k.permissions;
end
$$;
revoke all on function maim.resolve_api_key(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.resolve_api_key(text) to maim_app, maim_admin;

-- Open agent scope from an API key: the only way an untrusted caller (maim_plugin) gets an
-- agent. Writes the key's permissions (read back by the scope statement, maim_db/scope.py),
-- the proof maim.agent_id() checks, and the agent.
create or replace function maim.open_key_scope(key text) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    agent   text;
    granted text[];
    proof   text;
begin
    select r.agent_id, r.permissions into agent, granted from maim.resolve_api_key(key) r;
    if agent is null then
        raise exception 'invalid API key'
            using errcode = '28000',
                  hint = 'The key is unknown, revoked, expired, or its agent or tenant is suspended.';
    end if;
    -- Citus gives a transaction its distributed id at the first remote work; an empty
    -- intermediate result (a file of the transaction, removed at its end) asks for it now.
    -- (Two statements: one server has no get_current_transaction_id to parse.)
    if maim.on_citus() then
        if (select t.transaction_number from pg_catalog.get_current_transaction_id() t) = 0 then
            perform pg_catalog.create_intermediate_result('maim_key_scope',
                                                          'select 1 where false');
        end if;
    end if;
    -- written as open_agent_scope writes its settings: SET LOCAL only where Citus is loaded
    if pg_catalog.current_setting('citus.propagate_set_commands', true) is null then
        proof := pg_catalog.set_config('maim.key_permissions',
                                       pg_catalog.array_to_string(granted, ','), true);
        proof := pg_catalog.set_config('maim.agent_proof', maim.scope_proof(agent), true);
        agent := pg_catalog.set_config('maim.agent_id', agent, true);
    else
        execute format('set local maim.key_permissions = %L', array_to_string(granted, ','));
        execute format('set local maim.agent_proof = %L', maim.scope_proof(agent));
        execute format('set local maim.agent_id = %L', agent);
    end if;
    return agent;
end
$$;
revoke all on function maim.open_key_scope(text) from public, maim_app, maim_tenant,
    maim_admin, maim_plugin;
grant execute on function maim.open_key_scope(text) to maim_app, maim_plugin;

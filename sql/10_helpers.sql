-- Re-applied by `maimdb migrate` as maim_owner, before the versioned migrations.
-- The scope helpers every policy calls. Policies write them as `(select maim.agent_id())` so
-- PostgreSQL evaluates them once per statement (an InitPlan), not once per row.

-- The agent scope of this transaction. Unset or '' (what a placeholder setting reverts to
-- after a `set_config(..., true)` transaction) is an error, never a silent zero rows.
--
-- Who may name the agent: a role with maim_app's privileges (the runtime, which serves every
-- agent, and the operator's `SET LOCAL maim.agent_id` in psql) is trusted with the setting
-- as it stands. Anyone else — maim_plugin above all — holds an agent only as far as
-- maim.open_key_scope proved it for this transaction (migrations/0012): a hand-set or
-- replayed value raises instead of answering.
--
-- Invoker rights on purpose: this runs as the caller, so nothing in it can be turned into
-- the owner's rights; every name is qualified so the caller's search_path cannot change its
-- answer. Parallel restricted: the proof is bound to the leader's pid.
create or replace function maim.agent_id() returns pg_catalog.text
    language plpgsql stable parallel restricted
as $$
declare
    agent pg_catalog.text := pg_catalog.current_setting('maim.agent_id', true);
begin
    if agent is null or agent operator(pg_catalog.=) '' then
        raise exception 'maim.agent_id is not set'
            using errcode = '42501',
                  hint = 'Open agent scope first: in psql, BEGIN; SET LOCAL maim.agent_id = ''agent_...'' '
                      || '(a plain SET maim.agent_id stays for the session); in Python, connect(agent_id=...).';
    end if;
    if pg_catalog.pg_has_role('maim_app', 'USAGE') or maim.agent_proven(agent) then
        return agent;
    end if;
    raise exception 'agent scope % was not proven by an API key in this transaction', agent
        using errcode = '42501',
              hint = 'This role opens an agent only with its API key: connect(api_key=...), or '
                  || 'SELECT maim.open_key_scope(''mmc_...'') inside the transaction (on Citus, '
                  || 'a transaction begun NOT DEFERRABLE).';
end
$$;

-- The tenant scope of this transaction; same contract as maim.agent_id().
create or replace function maim.tenant_id() returns pg_catalog.text
    language plpgsql stable parallel safe
as $$
declare
    v pg_catalog.text := pg_catalog.current_setting('maim.tenant_id', true);
begin
    if v is null or v operator(pg_catalog.=) '' then
        raise exception 'maim.tenant_id is not set'
            using errcode = '42501',
                  hint = 'Open tenant scope first: in psql, BEGIN; SET LOCAL maim.tenant_id = ''tenant_...'' '
                      || '(a plain SET maim.tenant_id stays for the session); in Python, connect(tenant_id=...).';
    end if;
    return v;
end
$$;

-- An API key's block runs as maim_plugin, but the login decides what the block can become
-- again: RESET ROLE or SET ROLE returns to any role the login holds, and a login that may
-- create roles can grant itself more. A key's block therefore runs on a plugin login only:
-- one that holds maim_plugin and nothing else (directly; maim_plugin itself is a member of
-- nothing), and is not a superuser and has neither BYPASSRLS nor CREATEROLE. Anything else
-- (maim_app, maim_owner, a superuser group, ...) is refused with SQLSTATE MA002. An allow-
-- list, not a deny-list: a role nobody thought of is refused too.
create or replace function maim.assert_plugin_login() returns boolean
    language plpgsql stable
as $$
begin
    -- one query (each statement a PL/pgSQL function runs costs a plan check and an executor
    -- start: four of them made this check the key scope's largest part, issue 36)
    if exists (select from pg_catalog.pg_roles r
               where r.rolname operator(pg_catalog.=) session_user
                 and (r.rolsuper or r.rolbypassrls or r.rolcreaterole
                      or exists (select from pg_catalog.pg_auth_members m
                                 where m.member operator(pg_catalog.=) r.oid
                                   and m.roleid operator(pg_catalog.<>)
                                       'maim_plugin'::pg_catalog.regrole)))
            or exists (select from pg_catalog.pg_auth_members m
                       where m.member operator(pg_catalog.=) 'maim_plugin'::pg_catalog.regrole)
    then
        raise exception 'login % can become a trusted role, so a block opened from an API '
                        'key on it could leave the key''s agent', session_user
            using errcode = 'MA002',
                  hint = 'Open key scopes on a plugin login: one that holds maim_plugin and '
                      || 'nothing else, without CREATEROLE (docs/operations.md).';
    end if;
    return true;
end
$$;

-- The reset check's probe for temporary objects (maim_db/scope.py), asked only where the
-- session has a temporary schema: in a function of its own so that the scope statement does
-- not carry two catalog scans that every execution sets up and a clean session never runs
-- (a seventh of the agent scope statement's server cost, issue 36). SET keeps it from being
-- inlined back into the statement.
create or replace function maim.no_temp_objects() returns boolean
    language sql stable
    set search_path = pg_catalog, pg_temp
as $$
    select not exists (select from pg_catalog.pg_class c
                       where c.relnamespace operator(pg_catalog.=) pg_catalog.pg_my_temp_schema())
       and not exists (select from pg_catalog.pg_type t
                       where t.typnamespace operator(pg_catalog.=) pg_catalog.pg_my_temp_schema())
$$;

-- Trigger: keep updated_at honest whoever writes the row (raw SQL included).
create or replace function maim.set_updated_at() returns trigger
    language plpgsql
as $$
begin
    new.updated_at := pg_catalog.now();  -- the caller's search_path: name the schema
    return new;
end
$$;

-- The id of a new row of a MaiBot 1.x table (every `id` of maibot1.*, migrations/0020):
-- 1.x code keeps integer ids and its web UI reads them as JavaScript numbers, and a sequence
-- shared by every agent would tell each agent how many rows the others write (and be one
-- counter for a whole Citus cluster). So 53 bits (2^53 - 1 is JavaScript's largest safe
-- integer), from the top:
--   41  milliseconds since 2025-01-01 UTC (until 2094), so ids grow with time, as 1.x's
--       `where id > :last_id` cursors expect;
--    6  the backend's slot, its pid modulo 64: sessions on backends whose slots differ never
--       draw the same id, however fast they insert;
--    6  a count within the millisecond, from a random start.
-- Within one session and agent each id is greater than the last (the session setting
-- maibot1.last_id remembers '<agent> <id>'; a block of another agent starts afresh, so an
-- id tells nothing of other agents): past 64 ids in a millisecond the count runs on into the
-- next one. Two sessions of one agent can draw the same id only on backends of the same slot
-- and in the same millisecond; the insert then fails on the (agent_id, id) key (a
-- ConflictError), never overwrites, never touches another agent's row. docs/decisions.md,
-- "MaiBot 1.x tables", has the measured numbers. An id given explicitly (the 1.x importer
-- keeps 1.x's) is kept: this is only the column default.
create or replace function maim.maibot1_id() returns pg_catalog.int8
    language plpgsql volatile
as $$
declare
    agent constant pg_catalog.text :=
        coalesce(pg_catalog.current_setting('maim.agent_id', true), '');
    state constant pg_catalog.text := pg_catalog.current_setting('maibot1.last_id', true);
    slot constant pg_catalog.int8 :=
        (pg_catalog.pg_backend_pid() operator(pg_catalog.%) 64) operator(pg_catalog.<<) 6;
    -- milliseconds since 2025-01-01 00:00:00 UTC (1735689600000 ms after 1970)
    ms constant pg_catalog.int8 :=
        pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())
                         operator(pg_catalog.*) 1000)::pg_catalog.int8
        operator(pg_catalog.-) 1735689600000;
    id pg_catalog.int8 := (ms operator(pg_catalog.<<) 12) operator(pg_catalog.|) slot
        operator(pg_catalog.|)
        pg_catalog.floor(pg_catalog.random() operator(pg_catalog.*) 64)::pg_catalog.int8;
    last pg_catalog.int8;
begin
    if pg_catalog.starts_with(state, agent operator(pg_catalog.||) ' ') then
        last := pg_catalog.split_part(state, ' ', 2)::pg_catalog.int8;
        if id operator(pg_catalog.<=) last then
            if last operator(pg_catalog.&) 63 operator(pg_catalog.<) 63 then
                id := last operator(pg_catalog.+) 1;
            else  -- the millisecond's 64 are used: the next millisecond's first
                id := (((last operator(pg_catalog.>>) 12) operator(pg_catalog.+) 1)
                       operator(pg_catalog.<<) 12) operator(pg_catalog.|) slot;
            end if;
        end if;
    end if;
    if id operator(pg_catalog.>) 9007199254740991 then
        raise exception 'maim.maibot1_id() ran past 2^53 - 1 (its 41 bits of milliseconds '
                        'end in 2094)' using errcode = '22003';
    end if;
    perform pg_catalog.set_config('maibot1.last_id', agent operator(pg_catalog.||) ' '
                                  operator(pg_catalog.||) id::pg_catalog.text, false);
    return id;
end
$$;

comment on function maim.agent_id() is 'The agent scope (maim.agent_id); raises 42501 when unset.';
comment on function maim.no_temp_objects() is
    'The reset check''s probe: true when this session''s temporary schema holds nothing.';
comment on function maim.assert_plugin_login() is
    'A key scope''s login check; raises MA002 when the login can become a trusted role.';
comment on function maim.tenant_id() is 'The tenant scope (maim.tenant_id); raises 42501 when unset.';
comment on function maim.maibot1_id() is
    'A new 53-bit id of a MaiBot 1.x row: milliseconds, backend slot, count; rising per session and agent.';

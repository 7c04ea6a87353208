-- Re-applied by `maimdb migrate` as maim_owner, before the versioned migrations.
-- The scope helpers every policy calls. Policies write them as `(select maim.agent_id())` so
-- PostgreSQL evaluates them once per statement (an InitPlan), not once per row.

-- The agent scope of this transaction. Unset or '' (what a placeholder setting reverts to
-- after a `set_config(..., true)` transaction) is an error, never a silent zero rows.
create or replace function maim.agent_id() returns text
    language plpgsql stable parallel safe
as $$
declare
    v text := current_setting('maim.agent_id', true);
begin
    if v is null or v = '' then
        raise exception 'maim.agent_id is not set'
            using errcode = '42501',
                  hint = 'Open agent scope first: in psql, BEGIN; SET LOCAL maim.agent_id = ''agent_...'' '
                      || '(a plain SET maim.agent_id stays for the session); in Python, connect(agent_id=...).';
    end if;
    return v;
end
$$;

-- The tenant scope of this transaction; same contract as maim.agent_id().
create or replace function maim.tenant_id() returns text
    language plpgsql stable parallel safe
as $$
declare
    v text := current_setting('maim.tenant_id', true);
begin
    if v is null or v = '' then
        raise exception 'maim.tenant_id is not set'
            using errcode = '42501',
                  hint = 'Open tenant scope first: in psql, BEGIN; SET LOCAL maim.tenant_id = ''tenant_...'' '
                      || '(a plain SET maim.tenant_id stays for the session); in Python, connect(tenant_id=...).';
    end if;
    return v;
end
$$;

-- Trigger: keep updated_at honest whoever writes the row (raw SQL included).
create or replace function maim.set_updated_at() returns trigger
    language plpgsql
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

comment on function maim.agent_id() is 'The agent scope (maim.agent_id); raises 42501 when unset.';
comment on function maim.tenant_id() is 'The tenant scope (maim.tenant_id); raises 42501 when unset.';

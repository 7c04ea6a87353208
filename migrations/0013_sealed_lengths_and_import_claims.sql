-- Issue 11: secrets as long as documented, and imports no other agent can block.
--
-- 1. A provider's api_key and base_url hold up to 500 characters (docs/schema/agent-config.md),
--    but they are stored sealed (maim_db/crypto.py), and the checks of 0003 measured the sealed
--    text: a secret over 341 bytes was refused. maim_db checks the 500 characters before it
--    seals; the column now bounds what 500 characters of UTF-8 are once sealed.
alter table api_provider_configs
    drop constraint api_provider_configs_base_url_check,
    add constraint api_provider_configs_base_url_check check (char_length(base_url) <= 2720),
    drop constraint api_provider_configs_api_key_check,
    add constraint api_provider_configs_api_key_check check (char_length(api_key) <= 2720);

-- 2. import_claims: which import of a MaiBot file into an agent is running. Until now a
--    session advisory lock said so, and its key shows in pg_locks to every session, so anyone
--    could take it first and block that agent's imports for as long as they liked. A claim is
--    a row the agent owns (row-level security hides it from every other scope); it names the
--    importing backend and a random advisory lock that backend holds while it runs. A claim
--    counts only while that backend holds that lock: taking the lock from another session
--    blocks nobody, and a killed import's claim is simply taken over.
create table import_claims (
    agent_id   text        not null default maim.agent_id()
                           references agents (id) on delete cascade,
    source_key text        not null check (source_key ~ '^[0-9a-f]{16}$'),
    holder_pid integer     not null,
    lock_key   bigint      not null,
    claimed_at timestamptz not null default now(),
    primary key (agent_id, source_key)
);

call maim.isolate_agent_table('import_claims');

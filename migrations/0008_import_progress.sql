-- How far `maimdb import-sqlite` has got with each table of each MaiBot database, per agent.
--
-- The importer reads a source table in id order and commits every batch together with the
-- highest source id it covered, so a run that was killed resumes after the last committed
-- batch and a second run of a finished import writes nothing: one copy of each row, always.
-- A MaiBot file is recognised by `source_key`, a digest of its oldest rows (which MaiBot
-- never rewrites), so a later copy of the same bot's database continues where the last
-- import stopped, and a different bot's database starts from the beginning.
create table import_progress (
    agent_id       text        not null default maim.agent_id()
                               references agents (id) on delete cascade,
    id             uuid        not null default gen_random_uuid(),
    source_key     text        not null check (source_key ~ '^[0-9a-f]{16}$'),
    source_table   text        not null,
    last_source_id bigint      not null check (last_source_id >= 0),
    rows_written   bigint      not null default 0 check (rows_written >= 0),
    updated_at     timestamptz not null default now(),
    primary key (agent_id, id),
    -- the importer's per-batch upsert and its resume look-up
    unique (agent_id, source_key, source_table)
);

create trigger set_updated_at before update on import_progress
    for each row execute function maim.set_updated_at();

call maim.isolate_agent_table('import_progress');

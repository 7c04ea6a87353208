-- Business tables: the five of the original's core/models/business.py, with the columns its
-- code has (not the ones docs/DATABASE_MODELS.md describes).
--
-- Each row belongs to one agent: agent_id defaults from the scope, the key is
-- (agent_id, id) with a uuid id, and every UNIQUE constraint includes agent_id. Where the
-- original's constraints were wrong they are fixed on purpose:
--   chat_history, chat_logs  UNIQUE (agent_id, session_id) allowed one row per session,
--                            so it is now a plain index (agent_id, session_id, created_at)
--   user_sessions            session_id was unique across all agents, now per agent
-- JSON held in Text (metadata, tags) is a nullable jsonb object. The original's
-- placeholder table businessbasemodel is not recreated.

-- chat_history -----------------------------------------------------------------------------
create table chat_history (
    agent_id          text        not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    id                uuid        not null default gen_random_uuid(),
    session_id        text        not null check (char_length(session_id) <= 255),
    user_message      text        not null,
    assistant_message text        not null,
    user_id           text        not null check (char_length(user_id) <= 255),
    message_type      text        not null default 'text' check (char_length(message_type) <= 50),
    metadata          jsonb       check (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz not null default now(),
    primary key (agent_id, id)
);
-- a session's conversation in order.
create index chat_history_session on chat_history (agent_id, session_id, created_at);
-- an agent's recent history.
create index chat_history_created on chat_history (agent_id, created_at);
-- one user's history.
create index chat_history_user on chat_history (agent_id, user_id, created_at);

-- chat_logs --------------------------------------------------------------------------------
create table chat_logs (
    agent_id         text             not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id               uuid             not null default gen_random_uuid(),
    session_id       text             not null check (char_length(session_id) <= 255),
    request_type     text             not null check (char_length(request_type) <= 50),
    request_content  text             not null,
    response_content text,
    status_code      integer          not null,
    error_message    text,
    token_count      integer          check (token_count >= 0),
    response_time    double precision check (response_time >= 0),
    user_id          text             not null check (char_length(user_id) <= 255),
    metadata         jsonb            check (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz      not null default now(),
    primary key (agent_id, id)
);
-- a session's requests in order.
create index chat_logs_session on chat_logs (agent_id, session_id, created_at);
-- an agent's recent requests.
create index chat_logs_created on chat_logs (agent_id, created_at);
-- requests by status (the error rate, the failures), newest last.
create index chat_logs_status on chat_logs (agent_id, status_code, created_at);
-- one user's requests.
create index chat_logs_user on chat_logs (agent_id, user_id, created_at);

-- file_uploads -----------------------------------------------------------------------------
-- UNIQUE (agent_id, file_hash) also serves the lookup of an already-uploaded file by hash.
create table file_uploads (
    agent_id          text        not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    id                uuid        not null default gen_random_uuid(),
    original_filename text        not null check (char_length(original_filename) <= 255),
    stored_filename   text        not null check (char_length(stored_filename) <= 255),
    file_path         text        not null check (char_length(file_path) <= 500),
    file_size         integer     not null check (file_size >= 0),
    mime_type         text        not null check (char_length(mime_type) <= 100),
    file_hash         text        not null check (char_length(file_hash) <= 64),
    is_public         boolean     not null default false,
    download_url      text        check (char_length(download_url) <= 500),
    expires_at        timestamptz,
    user_id           text        not null check (char_length(user_id) <= 255),
    metadata          jsonb       check (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz not null default now(),
    primary key (agent_id, id),
    unique (agent_id, file_hash)
);
-- one user's uploads, newest last.
create index file_uploads_user on file_uploads (agent_id, user_id, created_at);

-- user_sessions ----------------------------------------------------------------------------
-- UNIQUE (agent_id, session_id) also serves the lookup of a session by its id.
create table user_sessions (
    agent_id      text        not null default maim.agent_id()
                              references agents (id) on delete cascade,
    id            uuid        not null default gen_random_uuid(),
    session_id    text        not null check (char_length(session_id) <= 255),
    user_id       text        not null check (char_length(user_id) <= 255),
    is_active     boolean     not null default true,
    last_activity timestamptz not null default now(),
    metadata      jsonb       check (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz not null default now(),
    expires_at    timestamptz,
    primary key (agent_id, id),
    unique (agent_id, session_id)
);
-- one user's sessions.
create index user_sessions_user on user_sessions (agent_id, user_id);

-- system_metrics ---------------------------------------------------------------------------
-- UNIQUE (agent_id, metric_name, created_at) also serves one metric's time series.
create table system_metrics (
    agent_id     text             not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    id           uuid             not null default gen_random_uuid(),
    metric_name  text             not null check (char_length(metric_name) <= 100),
    metric_value double precision not null,
    metric_unit  text             check (char_length(metric_unit) <= 20),
    tags         jsonb            check (jsonb_typeof(tags) = 'object'),
    created_at   timestamptz      not null default now(),
    primary key (agent_id, id),
    unique (agent_id, metric_name, created_at)
);
-- every metric of an agent in a time window.
create index system_metrics_created on system_metrics (agent_id, created_at);

-- row-level security, grants and policies --------------------------------------------------
call maim.isolate_agent_table('chat_history');
call maim.isolate_agent_table('chat_logs');
call maim.isolate_agent_table('file_uploads');
call maim.isolate_agent_table('user_sessions');
call maim.isolate_agent_table('system_metrics');

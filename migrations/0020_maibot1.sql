-- Issue 35, items 1, 2 and 5: MaiBot 1.x's tables under row-level security. Every bot people
-- run today is 1.x (1.0.0 on 2026-06-12, 1.2.1 the latest), and 1.x's data layer is 24
-- SQLModel tables (1.2.1's src/common/database/database_model.py) that maim_db had no home
-- for: 9 differ from their 0.x counterparts by 1-10 columns, 15 have none, and four names
-- (images, llm_usage, person_info, online_time) are 0.x tables in `public` already.
--
-- 1. The schema `maibot1` (sql/00_bootstrap.sql creates it and grants its usage) holds the
--    1.x tables under their 1.2.1 names, so neither generation renames anything; 1.x's
--    SQLModel classes name it as their schema (maim_db.sqlmodel). `maimdb audit`, the
--    policies (sql/30_policies.sql), the snapshot, export/restore/erase and the Citus
--    distribution cover it as they cover `public`.
-- 2. Every table: agent_id first (from the scope; deleting the agent deletes its rows), then
--    1.2.1's columns in 1.2.1's order with its names and nullability, and
--    `call maim.isolate_agent_table`. Types: INTEGER is bigint (SQLite's is 64-bit), DateTime
--    timestamptz (1.x's naive times are read in MAIMDB_TIMEZONE by maim_db.sqlmodel),
--    String(n) text without a length check (SQLite never enforced n, so 1.x files exceed
--    it), JSON text stays text, LargeBinary bytea, and 1.2.1's enums text with a CHECK of
--    what SQLAlchemy stores (images.image_type holds the member names EMOJI/IMAGE).
-- 3. Ids: `id bigint default maim.maibot1_id()` (sql/10_helpers.sql): 53 bits of time and
--    randomness, rising per session and agent, from no sequence (one shared by every agent
--    tells each how many rows the others write); key (agent_id, id); an explicit id (the
--    importer keeps 1.x's) is kept; a CHECK holds every id a JavaScript-safe integer, since
--    1.x's web UI reads them as numbers. 1.2.1's server defaults are SQL defaults here too;
--    its Python defaults stay Python's (maim_db.tables.maibot1).
-- 4. Every uniqueness 1.x made global is unique per agent ((agent_id, session_id), ...):
--    two agents in one group compute the same session_id and person_id, and B's first save
--    must neither fail on A's row nor learn that it exists. 1.x's own ON CONFLICT targets
--    name the columns without agent_id, so a port adds it (docs/porting-maibot.md).
-- 5. Indexes lead with agent_id and serve 1.2.1's runtime queries (its select(...).where()
--    and raw SQL under src/, A_memorix aside), not its per-column index=True set; the
--    primary key serves its `where id > :last_id` cursors and `order by id`.
--
-- No foreign keys between these tables: 1.2.1 declares none.

-- mai_messages ------------------------------------------------------------------------------------
-- Every stored message, received and sent (1.x's `Messages`); raw_content is the msgpack
-- of the message as 1.x received it.
create table maibot1.mai_messages (
    agent_id             text             not null default maim.agent_id()
                                          references agents (id) on delete cascade,
    id                   bigint           not null default maim.maibot1_id(),
    message_id           text             not null,
    timestamp            timestamptz,
    platform             text             not null,
    user_id              text             not null,
    user_nickname        text             not null,
    user_cardname        text,
    group_id             text,
    group_name           text,
    is_mentioned         boolean          not null,
    is_at                boolean          not null,
    session_id           text             not null,
    reply_to             text,
    is_emoji             boolean          not null,
    is_picture           boolean          not null,
    is_command           boolean          not null,
    is_notify            boolean          not null,
    raw_content          bytea,
    processed_plain_text text,
    additional_config    text,
    reply_frequency      double precision,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- a chat's messages by time: where session_id = ? order by timestamp desc / timestamp >= ?
create index mai_messages_session_time on maibot1.mai_messages (agent_id, session_id, timestamp);
-- messages by time across chats: where timestamp >= ?
create index mai_messages_time on maibot1.mai_messages (agent_id, timestamp);
-- where message_id = ? / in (...) (and platform = ?: 1.x's platform_message_id index)
create index mai_messages_message on maibot1.mai_messages (agent_id, message_id);
-- a person's messages: where platform = ? and user_id = ?
create index mai_messages_user on maibot1.mai_messages (agent_id, platform, user_id);
call maim.isolate_agent_table('maibot1.mai_messages');

-- llm_usage ---------------------------------------------------------------------------------------
-- One LLM request (1.x's `ModelUsage`); the statistics read it by time and by id.
create table maibot1.llm_usage (
    agent_id                 text             not null default maim.agent_id()
                                              references agents (id) on delete cascade,
    id                       bigint           not null default maim.maibot1_id(),
    model_name               text             not null,
    model_assign_name        text,
    model_api_provider_name  text             not null,
    session_id               text             not null,
    task_name                text,
    request_type             text             not null,
    time_cost                double precision,
    timestamp                timestamptz,
    prompt_tokens            bigint           not null,
    completion_tokens        bigint           not null,
    total_tokens             bigint           not null,
    prompt_cache_enabled     boolean          not null default false,
    prompt_cache_hit_tokens  bigint           not null default 0,
    prompt_cache_miss_tokens bigint           not null default 0,
    cost                     double precision not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- the statistics: where timestamp >= ? and timestamp <= ?
create index llm_usage_time on maibot1.llm_usage (agent_id, timestamp);
call maim.isolate_agent_table('maibot1.llm_usage');

-- images ------------------------------------------------------------------------------------------
-- Emojis and pictures in one table (1.x's `Images`; 0.x had `emoji` and `images`).
create table maibot1.images (
    agent_id       text        not null default maim.agent_id()
                               references agents (id) on delete cascade,
    id             bigint      not null default maim.maibot1_id(),
    image_hash     text        not null,
    description    text        not null,
    full_path      text        not null,
    image_type     text        check (image_type in ('EMOJI', 'IMAGE')),
    query_count    bigint      not null,
    is_registered  boolean     not null,
    is_banned      boolean     not null,
    no_file_flag   boolean     not null,
    record_time    timestamptz,
    register_time  timestamptz,
    last_used_time timestamptz,
    vlm_processed  boolean     not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where image_hash = ? (and image_type = ?)
create index images_hash on maibot1.images (agent_id, image_hash);
call maim.isolate_agent_table('maibot1.images');

-- tool_records ------------------------------------------------------------------------------------
-- One tool call of the planner (1.x's `ToolRecord`).
create table maibot1.tool_records (
    agent_id       text        not null default maim.agent_id()
                               references agents (id) on delete cascade,
    id             bigint      not null default maim.maibot1_id(),
    tool_id        text        not null,
    timestamp      timestamptz,
    session_id     text        not null,
    tool_name      text        not null,
    tool_reasoning text,
    tool_data      text,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where session_id = ? and timestamp >= ?
create index tool_records_session_time on maibot1.tool_records (agent_id, session_id, timestamp);
-- where timestamp >= ? and timestamp <= ? (statistics, cleanup)
create index tool_records_time on maibot1.tool_records (agent_id, timestamp);
call maim.isolate_agent_table('maibot1.tool_records');

-- maisaka_monitor_events --------------------------------------------------------------------------
-- The monitor's event ledger; `timestamp` is epoch seconds, as 1.x keeps it.
create table maibot1.maisaka_monitor_events (
    agent_id       text             not null default maim.agent_id()
                                    references agents (id) on delete cascade,
    event_id       bigint           not null default maim.maibot1_id(),
    event_type     text             not null,
    session_id     text             not null,
    timestamp      double precision not null,
    schema_version bigint           not null default 1,
    payload_json   text             not null,
    created_at     timestamptz,
    check (event_id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, event_id)
);
-- the cleanup: delete where created_at < ?
create index maisaka_monitor_events_created
    on maibot1.maisaka_monitor_events (agent_id, created_at);
call maim.isolate_agent_table('maibot1.maisaka_monitor_events');

-- maisaka_reply_effects ---------------------------------------------------------------------------
-- One reply's effect record, keyed by the UUID text 1.x makes.
create table maibot1.maisaka_reply_effects (
    agent_id            text             not null default maim.agent_id()
                                         references agents (id) on delete cascade,
    effect_id           text             not null,
    session_id          text             not null,
    session_name        text             not null,
    chat_type           text             not null,
    status              text             not null,
    created_at          timestamptz,
    finalized_at        timestamptz,
    strategy_primary    text             not null,
    model_name          text             not null,
    request_fingerprint text             not null,
    prompt_fingerprint  text             not null,
    scorer_version      bigint           not null,
    response_score      double precision,
    reception_score     double precision,
    conversation_score  double precision,
    raw_score           double precision,
    relative_score      double precision,
    confidence          double precision not null default 0,
    record_json         text             not null,
    record_blob         bytea,
    primary key (agent_id, effect_id)
);
-- a chat's records: where session_id = ? order by created_at desc
create index maisaka_reply_effects_session_created
    on maibot1.maisaka_reply_effects (agent_id, session_id, created_at);
-- where created_at between ? and ? order by created_at
create index maisaka_reply_effects_created on maibot1.maisaka_reply_effects (agent_id, created_at);
call maim.isolate_agent_table('maibot1.maisaka_reply_effects');

-- one_time_maintenance_tasks ----------------------------------------------------------------------
-- The state of 1.x's one-time maintenance jobs, one row per job and agent.
create table maibot1.one_time_maintenance_tasks (
    agent_id     text        not null default maim.agent_id()
                             references agents (id) on delete cascade,
    task_name    text        not null,
    phase        text        not null,
    status       text        not null,
    cursor_id    bigint      not null,
    stats_json   text        not null,
    last_error   text,
    completed_at timestamptz,
    updated_at   timestamptz,
    primary key (agent_id, task_name)
);
call maim.isolate_agent_table('maibot1.one_time_maintenance_tasks');

-- statistics_aggregation_cursors ------------------------------------------------------------------
-- How far the hourly statistics have read each source table (an id of it).
create table maibot1.statistics_aggregation_cursors (
    agent_id          text        not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    source_name       text        not null,
    last_processed_id bigint      not null,
    updated_at        timestamptz,
    primary key (agent_id, source_name)
);
call maim.isolate_agent_table('maibot1.statistics_aggregation_cursors');

-- statistics_message_hourly -----------------------------------------------------------------------
-- Messages per hour and chat.
create table maibot1.statistics_message_hourly (
    agent_id         text        not null default maim.agent_id()
                                 references agents (id) on delete cascade,
    id               bigint      not null default maim.maibot1_id(),
    bucket_time      timestamptz not null,
    chat_id          text        not null,
    chat_name        text        not null,
    chat_type        text        not null,
    message_count    bigint      not null,
    latest_timestamp timestamptz not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- the aggregation's upsert target, and reads by bucket_time range
    unique (agent_id, bucket_time, chat_id)
);
call maim.isolate_agent_table('maibot1.statistics_message_hourly');

-- statistics_tool_hourly --------------------------------------------------------------------------
-- Tool calls per hour and tool.
create table maibot1.statistics_tool_hourly (
    agent_id    text        not null default maim.agent_id()
                            references agents (id) on delete cascade,
    id          bigint      not null default maim.maibot1_id(),
    bucket_time timestamptz not null,
    tool_name   text        not null,
    call_count  bigint      not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- the aggregation's upsert target, and reads by bucket_time range
    unique (agent_id, bucket_time, tool_name)
);
call maim.isolate_agent_table('maibot1.statistics_tool_hourly');

-- statistics_model_hourly -------------------------------------------------------------------------
-- LLM requests per hour, request type, model and provider.
create table maibot1.statistics_model_hourly (
    agent_id          text             not null default maim.agent_id()
                                       references agents (id) on delete cascade,
    id                bigint           not null default maim.maibot1_id(),
    bucket_time       timestamptz      not null,
    request_type      text             not null,
    module_name       text             not null,
    provider_name     text             not null,
    model_name        text             not null,
    request_count     bigint           not null,
    prompt_tokens     bigint           not null,
    completion_tokens bigint           not null,
    total_tokens      bigint           not null,
    cost              double precision not null,
    time_cost_sum     double precision not null,
    time_cost_sq_sum  double precision not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- the aggregation's upsert target, and reads by bucket_time range
    unique (agent_id, bucket_time, request_type, model_name, provider_name)
);
call maim.isolate_agent_table('maibot1.statistics_model_hourly');

-- high_frequency_terms ----------------------------------------------------------------------------
-- Frequent words and phrases per chat.
create table maibot1.high_frequency_terms (
    agent_id          text             not null default maim.agent_id()
                                       references agents (id) on delete cascade,
    id                bigint           not null default maim.maibot1_id(),
    chat_id           text             not null,
    term              text             not null,
    rank              bigint           not null,
    occurrence_count  bigint           not null,
    message_count     bigint           not null,
    frequency         double precision not null,
    message_frequency double precision not null,
    created_at        timestamptz      not null,
    updated_at        timestamptz      not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- one row per chat and term; where chat_id = ?
    unique (agent_id, chat_id, term)
);
-- a chat's terms in rank order (1.x's chat_rank index)
create index high_frequency_terms_chat_rank
    on maibot1.high_frequency_terms (agent_id, chat_id, rank);
call maim.isolate_agent_table('maibot1.high_frequency_terms');

-- online_time -------------------------------------------------------------------------------------
-- Periods the bot was online.
create table maibot1.online_time (
    agent_id         text        not null default maim.agent_id()
                                 references agents (id) on delete cascade,
    id               bigint      not null default maim.maibot1_id(),
    timestamp        timestamptz,
    duration_minutes bigint      not null,
    start_timestamp  timestamptz,
    end_timestamp    timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where end_timestamp >= ? (the online-time statistics)
create index online_time_end on maibot1.online_time (agent_id, end_timestamp);
call maim.isolate_agent_table('maibot1.online_time');

-- expressions -------------------------------------------------------------------------------------
-- Learned ways of saying things, per chat or global (session_id null).
create table maibot1.expressions (
    agent_id         text        not null default maim.agent_id()
                                 references agents (id) on delete cascade,
    id               bigint      not null default maim.maibot1_id(),
    situation        text        not null,
    style            text        not null,
    content_list     text        not null,
    count            bigint      not null,
    last_active_time timestamptz,
    create_time      timestamptz,
    session_id       text,
    checked          boolean     not null,
    modified_by      text        check (modified_by in ('AI', 'USER')),
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where session_id = ? / in (...) / is null
create index expressions_session on maibot1.expressions (agent_id, session_id);
call maim.isolate_agent_table('maibot1.expressions');

-- behavior_experience_paths -----------------------------------------------------------------------
-- Scene cluster -> action -> outcome, with the feedback that scored it.
create table maibot1.behavior_experience_paths (
    agent_id           text             not null default maim.agent_id()
                                        references agents (id) on delete cascade,
    id                 bigint           not null default maim.maibot1_id(),
    session_id         text,
    scene_cluster_id   bigint           not null,
    action_id          bigint           not null,
    outcome_id         bigint           not null,
    actor_type         text             not null,
    learning_type      text             not null,
    evidence_list      text             not null,
    feedback_list      text             not null,
    count              bigint           not null,
    activation_count   bigint           not null,
    success_count      bigint           not null,
    failure_count      bigint           not null,
    score              double precision not null default 0,
    enabled            boolean          not null default true,
    last_active_time   timestamptz,
    last_feedback_time timestamptz,
    create_time        timestamptz,
    update_time        timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- one path per scope, cluster, action, outcome, actor and learning type; where session_id = ?
    unique (agent_id, session_id, scene_cluster_id, action_id,
            outcome_id, actor_type, learning_type)
);
-- where scene_cluster_id = ? / in (...)
create index behavior_experience_paths_cluster
    on maibot1.behavior_experience_paths (agent_id, scene_cluster_id);
call maim.isolate_agent_table('maibot1.behavior_experience_paths');

-- behavior_scene_clusters -------------------------------------------------------------------------
-- Clusters of scenes, each a distribution over tags (JSON text).
create table maibot1.behavior_scene_clusters (
    agent_id         text        not null default maim.agent_id()
                                 references agents (id) on delete cascade,
    id               bigint      not null default maim.maibot1_id(),
    session_id       text,
    tag_distribution text        not null,
    source_count     bigint      not null,
    update_time      timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where session_id = ? / is null
create index behavior_scene_clusters_session
    on maibot1.behavior_scene_clusters (agent_id, session_id);
call maim.isolate_agent_table('maibot1.behavior_scene_clusters');

-- behavior_scene_tag_clusters ---------------------------------------------------------------------
-- Which cluster each scene tag belongs to.
create table maibot1.behavior_scene_tag_clusters (
    agent_id     text        not null default maim.agent_id()
                             references agents (id) on delete cascade,
    id           bigint      not null default maim.maibot1_id(),
    tag_kind     text        not null,
    tag          text        not null,
    cluster_key  text        not null,
    source_count bigint      not null,
    update_time  timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- where tag_kind = ? and tag in (...)
    unique (agent_id, tag_kind, tag)
);
-- where tag_kind = ? and cluster_key in (...)
create index behavior_scene_tag_clusters_kind_cluster
    on maibot1.behavior_scene_tag_clusters (agent_id, tag_kind, cluster_key);
call maim.isolate_agent_table('maibot1.behavior_scene_tag_clusters');

-- behavior_actions --------------------------------------------------------------------------------
-- Action texts, shared by the paths that take them.
create table maibot1.behavior_actions (
    agent_id     text        not null default maim.agent_id()
                             references agents (id) on delete cascade,
    id           bigint      not null default maim.maibot1_id(),
    session_id   text,
    action       text        not null,
    action_hash  text        not null,
    source_count bigint      not null,
    create_time  timestamptz,
    update_time  timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- where session_id = ? and action_hash = ?
    unique (agent_id, session_id, action_hash)
);
call maim.isolate_agent_table('maibot1.behavior_actions');

-- behavior_outcomes -------------------------------------------------------------------------------
-- Outcome texts, shared by the paths that reach them.
create table maibot1.behavior_outcomes (
    agent_id     text        not null default maim.agent_id()
                             references agents (id) on delete cascade,
    id           bigint      not null default maim.maibot1_id(),
    session_id   text,
    outcome      text        not null,
    outcome_hash text        not null,
    source_count bigint      not null,
    create_time  timestamptz,
    update_time  timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- where session_id = ? and outcome_hash = ?
    unique (agent_id, session_id, outcome_hash)
);
call maim.isolate_agent_table('maibot1.behavior_outcomes');

-- jargons -----------------------------------------------------------------------------------------
-- Slang terms and what they mean.
create table maibot1.jargons (
    agent_id             text        not null default maim.agent_id()
                                     references agents (id) on delete cascade,
    id                   bigint      not null default maim.maibot1_id(),
    content              text        not null,
    evidence_messages    text,
    meaning              text        not null,
    session_id_dict      text        not null,
    count                bigint      not null,
    is_jargon            boolean,
    is_complete          boolean     not null,
    is_global            boolean     not null,
    last_inference_count bigint      not null,
    created_by           text        not null check (created_by in ('AI', 'MANUAL')),
    created_timestamp    timestamptz,
    updated_timestamp    timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where content = ?
create index jargons_content on maibot1.jargons (agent_id, content);
call maim.isolate_agent_table('maibot1.jargons');

-- binary_data -------------------------------------------------------------------------------------
-- Files the bot stored, by the hash of their content.
create table maibot1.binary_data (
    agent_id  text   not null default maim.agent_id()
                     references agents (id) on delete cascade,
    id        bigint not null default maim.maibot1_id(),
    data_hash text   not null,
    full_path text   not null,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id)
);
-- where data_hash = ?
create index binary_data_hash on maibot1.binary_data (agent_id, data_hash);
call maim.isolate_agent_table('maibot1.binary_data');

-- person_info -------------------------------------------------------------------------------------
-- People the bot knows; person_id is unique per agent.
create table maibot1.person_info (
    agent_id         text        not null default maim.agent_id()
                                 references agents (id) on delete cascade,
    id               bigint      not null default maim.maibot1_id(),
    is_known         boolean     not null,
    person_id        text        not null,
    person_name      text,
    name_reason      text,
    platform         text        not null,
    user_id          text        not null,
    user_nickname    text        not null,
    group_cardname   text,
    memory_points    text,
    know_counts      bigint      not null,
    first_known_time timestamptz,
    last_known_time  timestamptz,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- get_or_create: where person_id = ? (1.x: unique person_id)
    unique (agent_id, person_id)
);
-- where platform = ? and user_id = ?
create index person_info_user on maibot1.person_info (agent_id, platform, user_id);
call maim.isolate_agent_table('maibot1.person_info');

-- chat_sessions -----------------------------------------------------------------------------------
-- Conversations (1.x's replacement of 0.x's chat_streams); session_id is unique per agent.
create table maibot1.chat_sessions (
    agent_id              text        not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id                    bigint      not null default maim.maibot1_id(),
    session_id            text        not null,
    created_timestamp     timestamptz,
    last_active_timestamp timestamptz,
    user_id               text,
    user_nickname         text,
    user_cardname         text,
    group_id              text,
    group_name            text,
    platform              text        not null,
    account_id            text,
    scope                 text,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- the session lookups: where session_id = ? / in (...) (1.x: unique session_id)
    unique (agent_id, session_id)
);
call maim.isolate_agent_table('maibot1.chat_sessions');

-- bot_platform_accounts ---------------------------------------------------------------------------
-- The bot's own accounts, as its adapters reported them.
create table maibot1.bot_platform_accounts (
    agent_id          text        not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    id                bigint      not null default maim.maibot1_id(),
    platform          text        not null,
    account_id        text        not null,
    disabled          boolean     not null,
    first_seen_at     timestamptz not null,
    last_seen_at      timestamptz not null,
    disabled_at       timestamptz,
    last_source       text        not null,
    last_adapter_id   text,
    last_plugin_id    text,
    last_gateway_name text,
    check (id between -9007199254740991 and 9007199254740991),
    primary key (agent_id, id),
    -- where platform = ? and account_id = ?
    unique (agent_id, platform, account_id)
);
call maim.isolate_agent_table('maibot1.bot_platform_accounts');

-- The MaiBot runtime tables: everything one agent's bot reads and writes while it chats.
-- Ported from MaiBot's peewee-era models (0.12.x `MODELS`, plus the `GroupInfo` class) and
-- the three tables tcmofashi/MaiMBot `saas` and the original maim_db added (runtime_state,
-- hippo_topic_cache, hippo_batch_state). docs/schema/runtime.md explains every choice.
--
-- Column names, order and Python defaults are MaiBot's, so its queries port over unchanged
-- (messages keeps a column named user_id). What changes:
--   * every table gets agent_id (filled from the scope) and a uuid id, key (agent_id, id)
--   * every uniqueness MaiBot made global is unique per agent: two agents in the same QQ
--     group compute the same stream_id and person_id, and must not collide
--   * booleans are boolean, DateTimeFields are timestamptz, epoch-second floats stay
--     double precision, and JSON-holding TEXT columns stay text (MaiBot json.loads them)
--   * indexes lead with agent_id and follow the hot queries, not MaiBot's per-column ones
--
-- No foreign keys between these tables: MaiBot declares none, chat_id is written before or
-- without its chat_streams row, and jargon.chat_id may hold a JSON list of stream ids.

-- chat_streams -----------------------------------------------------------------------------
-- One row per conversation (a group, or a private chat).
create table chat_streams (
    agent_id         text             not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id               uuid             not null default gen_random_uuid(),
    stream_id        text             not null,
    create_time      double precision not null,
    group_platform   text,
    group_id         text,
    group_name       text,
    last_active_time double precision not null,
    platform         text             not null,
    user_platform    text             not null,
    user_id          text             not null,
    user_nickname    text             not null,
    user_cardname    text,
    primary key (agent_id, id),
    -- get_or_create_stream: where stream_id = ? (and the replace() upsert's conflict target)
    unique (agent_id, stream_id)
);

-- messages ---------------------------------------------------------------------------------
-- Every stored message, received and bot-sent.
create table messages (
    agent_id                   text             not null default maim.agent_id()
                                                references agents (id) on delete cascade,
    id                         uuid             not null default gen_random_uuid(),
    message_id                 text             not null,
    time                       double precision not null,
    chat_id                    text             not null,
    reply_to                   text,
    interest_value             double precision,
    key_words                  text,
    key_words_lite             text,
    is_mentioned               boolean,
    is_at                      boolean,
    reply_probability_boost    double precision,
    chat_info_stream_id        text             not null,
    chat_info_platform         text             not null,
    chat_info_user_platform    text             not null,
    chat_info_user_id          text             not null,
    chat_info_user_nickname    text             not null,
    chat_info_user_cardname    text,
    chat_info_group_platform   text,
    chat_info_group_id         text,
    chat_info_group_name       text,
    chat_info_create_time      double precision not null,
    chat_info_last_active_time double precision not null,
    user_platform              text,
    user_id                    text,
    user_nickname              text,
    user_cardname              text,
    processed_plain_text       text,
    display_message            text,
    priority_mode              text,
    priority_info              text,
    additional_config          text,
    is_emoji                   boolean          not null default false,
    is_picid                   boolean          not null default false,
    is_command                 boolean          not null default false,
    intercept_message_level    integer          not null default 0,
    is_notify                  boolean          not null default false,
    selected_expressions       text,
    primary key (agent_id, id)
);
-- find_messages per chat: idle poll (chat_id = ? and time > ? and time < ? order by time
-- desc limit 20), context windows (time < ? desc limit n), counts and learner ranges.
create index messages_chat_time on messages (agent_id, chat_id, time desc);
-- update_message after sending: where message_id = ? order by time desc limit 1.
create index messages_message_id on messages (agent_id, message_id);
-- statistics every 300 s and hfc recent-message stats: where time >= ? across chats.
create index messages_time on messages (agent_id, time);

-- action_records ---------------------------------------------------------------------------
-- One row per planner or action step.
create table action_records (
    agent_id                 text             not null default maim.agent_id()
                                              references agents (id) on delete cascade,
    id                       uuid             not null default gen_random_uuid(),
    action_id                text             not null,
    time                     double precision not null,
    action_reasoning         text,
    action_name              text             not null,
    action_data              text             not null,
    action_done              boolean          not null default false,
    action_build_into_prompt boolean          not null default false,
    action_prompt_display    text             not null,
    chat_id                  text             not null,
    chat_info_stream_id      text             not null,
    chat_info_platform       text             not null,
    primary key (agent_id, id)
);
-- build_readable_messages with actions: chat_id = ? and time between ? and ? order by time.
create index action_records_chat_time on action_records (agent_id, chat_id, time);
-- store_action_info upsert: where action_id = ? limit 1.
create index action_records_action_id on action_records (agent_id, action_id);
-- statistics every 300 s: where time >= ?.
create index action_records_time on action_records (agent_id, time);

-- llm_usage --------------------------------------------------------------------------------
-- One row per LLM call: tokens, cost, latency.
create table llm_usage (
    agent_id           text             not null default maim.agent_id()
                                        references agents (id) on delete cascade,
    id                 uuid             not null default gen_random_uuid(),
    model_name         text             not null,
    model_assign_name  text,
    model_api_provider text,
    user_id            text             not null,
    request_type       text             not null,
    endpoint           text             not null,
    prompt_tokens      integer          not null check (prompt_tokens >= 0),
    completion_tokens  integer          not null check (completion_tokens >= 0),
    total_tokens       integer          not null check (total_tokens >= 0),
    cost               double precision not null check (cost >= 0),
    time_cost          double precision check (time_cost >= 0),
    status             text             not null,
    timestamp          timestamptz      not null,
    primary key (agent_id, id)
);
-- statistics every 300 s: where timestamp >= ?.
create index llm_usage_timestamp on llm_usage (agent_id, timestamp);

-- emoji ------------------------------------------------------------------------------------
-- The emoji (sticker) library: registered, pending and banned.
create table emoji (
    agent_id       text             not null default maim.agent_id()
                                    references agents (id) on delete cascade,
    id             uuid             not null default gen_random_uuid(),
    full_path      text             not null,
    format         text             not null,
    emoji_hash     text             not null,
    description    text             not null,
    query_count    integer          not null default 0 check (query_count >= 0),
    is_registered  boolean          not null default false,
    is_banned      boolean          not null default false,
    emotion        text,
    record_time    double precision not null,
    register_time  double precision,
    usage_count    integer          not null default 0 check (usage_count >= 0),
    last_used_time double precision,
    primary key (agent_id, id),
    unique (agent_id, full_path)
);
-- record_usage and registration checks: Emoji.get(emoji_hash = ?).
create index emoji_emoji_hash on emoji (agent_id, emoji_hash);

-- images -----------------------------------------------------------------------------------
-- Every picture and emoji image seen, with its VLM description.
create table images (
    agent_id      text             not null default maim.agent_id()
                                   references agents (id) on delete cascade,
    id            uuid             not null default gen_random_uuid(),
    image_id      text             not null default '',
    emoji_hash    text             not null,
    description   text,
    path          text             not null,
    count         integer          not null default 1 check (count >= 0),
    timestamp     double precision not null,
    type          text             not null,
    vlm_processed boolean          not null default false,
    primary key (agent_id, id),
    unique (agent_id, path)
);
-- [picid:...] lookups on every message and every rendered context: where image_id = ?.
create index images_image_id on images (agent_id, image_id);
-- ImageManager description pipeline: where emoji_hash = ? (and description is not null).
create index images_emoji_hash on images (agent_id, emoji_hash);

-- image_descriptions -----------------------------------------------------------------------
-- Cached descriptions by image hash and kind.
create table image_descriptions (
    agent_id               text             not null default maim.agent_id()
                                            references agents (id) on delete cascade,
    id                     uuid             not null default gen_random_uuid(),
    type                   text             not null,
    image_description_hash text             not null,
    description            text             not null,
    timestamp              double precision not null,
    primary key (agent_id, id)
);
-- ImageManager: get_or_none(image_description_hash = ? and type = ?).
create index image_descriptions_hash_type
    on image_descriptions (agent_id, image_description_hash, type);

-- emoji_description_cache ------------------------------------------------------------------
-- Cached emoji descriptions and emotion tags by emoji hash.
create table emoji_description_cache (
    agent_id     text             not null default maim.agent_id()
                                  references agents (id) on delete cascade,
    id           uuid             not null default gen_random_uuid(),
    emoji_hash   text             not null,
    description  text             not null,
    emotion_tags text,
    timestamp    double precision not null,
    primary key (agent_id, id),
    -- ImageManager: get_or_none(emoji_hash = ?) and get_or_create
    unique (agent_id, emoji_hash)
);

-- online_time ------------------------------------------------------------------------------
-- Online-time intervals for the statistics page.
create table online_time (
    agent_id        text        not null default maim.agent_id()
                                references agents (id) on delete cascade,
    id              uuid        not null default gen_random_uuid(),
    timestamp       text        not null default to_char(localtimestamp, 'YYYY-MM-DD HH24:MI:SS.US'),
    duration        integer     not null check (duration >= 0),
    start_timestamp timestamptz not null default now(),
    end_timestamp   timestamptz not null,
    primary key (agent_id, id)
);
-- statistics (end_timestamp >= ?) and OnlineTimeRecordTask (order by end_timestamp desc limit 1).
create index online_time_end on online_time (agent_id, end_timestamp);

-- person_info ------------------------------------------------------------------------------
-- One row per person the bot has met.
create table person_info (
    agent_id        text             not null default maim.agent_id()
                                     references agents (id) on delete cascade,
    id              uuid             not null default gen_random_uuid(),
    is_known        boolean          not null default false,
    person_id       text             not null,
    person_name     text,
    name_reason     text,
    platform        text             not null,
    user_id         text             not null,
    nickname        text,
    group_nick_name text,
    memory_points   text,
    know_times      double precision,
    know_since      double precision,
    last_know       double precision,
    primary key (agent_id, id),
    -- register_person and every rendered message: get_or_none(person_id = ?)
    unique (agent_id, person_id)
);

-- group_info -------------------------------------------------------------------------------
-- Group profiles (MaiBot defines the model but does not create the table).
create table group_info (
    agent_id         text             not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id               uuid             not null default gen_random_uuid(),
    group_id         text             not null,
    group_name       text,
    platform         text             not null,
    group_impression text,
    member_list      text,
    topic            text,
    create_time      double precision,
    last_active      double precision,
    member_count     integer          default 0 check (member_count >= 0),
    primary key (agent_id, id),
    unique (agent_id, group_id)
);

-- expression -------------------------------------------------------------------------------
-- Learned speaking styles, per chat.
create table expression (
    agent_id         text             not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id               uuid             not null default gen_random_uuid(),
    situation        text             not null,
    style            text             not null,
    context          text,
    content_list     text,
    count            integer          not null default 1 check (count >= 0),
    last_active_time double precision not null,
    chat_id          text             not null,
    create_date      double precision,
    checked          boolean          not null default false,
    rejected         boolean          not null default false,
    modified_by      text,
    primary key (agent_id, id)
);
-- expression selection (chat_id in (...) and not rejected) and the learner's
-- chat_id = ? and style = ? / situation = ? look-ups.
create index expression_chat on expression (agent_id, chat_id);

-- jargon -----------------------------------------------------------------------------------
-- Learned slang and terms with their inferred meanings.
create table jargon (
    agent_id               text    not null default maim.agent_id()
                                   references agents (id) on delete cascade,
    id                     uuid    not null default gen_random_uuid(),
    content                text    not null,
    raw_content            text,
    meaning                text,
    chat_id                text    not null,
    is_global              boolean not null default false,
    count                  integer not null default 0 check (count >= 0),
    is_jargon              boolean,
    last_inference_count   integer check (last_inference_count >= 0),
    is_complete            boolean not null default false,
    inference_with_context text,
    inference_content_only text,
    primary key (agent_id, id)
);
-- jargon miner, on every learning pass: where content = ?.
create index jargon_content on jargon (agent_id, content);
-- jargon explainer, once per reply: where meaning is not null and not empty
-- order by count desc (the whole set, read in index order instead of sorted).
create index jargon_meaning_count on jargon (agent_id, count desc)
    where meaning is not null and meaning <> '';

-- chat_history_summary ---------------------------------------------------------------------
-- Topic summaries of closed conversation stretches (MaiBot's chat_history).
create table chat_history_summary (
    agent_id      text             not null default maim.agent_id()
                                   references agents (id) on delete cascade,
    id            uuid             not null default gen_random_uuid(),
    chat_id       text             not null,
    start_time    double precision not null,
    end_time      double precision not null,
    original_text text             not null,
    participants  text             not null,
    theme         text             not null,
    keywords      text             not null,
    summary       text             not null,
    key_point     text,
    count         integer          not null default 0 check (count >= 0),
    forget_times  integer          not null default 0 check (forget_times >= 0),
    primary key (agent_id, id)
);
-- query_chat_history tool and dream agent: chat_id = ? order by start_time [desc] limit n.
create index chat_history_summary_chat_start
    on chat_history_summary (agent_id, chat_id, start_time);
-- forgetting task every 300 s: forget_times = ? and end_time < ?.
create index chat_history_summary_forget
    on chat_history_summary (agent_id, forget_times, end_time);

-- thinking_back ----------------------------------------------------------------------------
-- The memory-retrieval question and answer cache.
create table thinking_back (
    agent_id       text             not null default maim.agent_id()
                                    references agents (id) on delete cascade,
    id             uuid             not null default gen_random_uuid(),
    chat_id        text             not null,
    question       text             not null,
    context        text,
    found_answer   boolean          not null default false,
    answer         text,
    thinking_steps text,
    create_time    double precision not null,
    update_time    double precision not null,
    primary key (agent_id, id)
);
-- memory retrieval per reply: chat_id = ? and update_time >= ? order by update_time desc
-- limit 5 (and the chat_id = ? and question = ? variant).
create index thinking_back_chat_update on thinking_back (agent_id, chat_id, update_time desc);

-- runtime_state ----------------------------------------------------------------------------
-- Key-value state that MaiBot kept in local JSON files (local_store_manager).
create table runtime_state (
    agent_id    text        not null default maim.agent_id()
                            references agents (id) on delete cascade,
    id          uuid        not null default gen_random_uuid(),
    state_key   text        not null,
    state_value text,
    updated_at  timestamptz not null default now(),
    primary key (agent_id, id),
    -- get_or_none(state_key = ?) with save/create/delete
    unique (agent_id, state_key)
);

-- hippo_topic_cache ------------------------------------------------------------------------
-- The chat-history summariser's open topics, per chat.
create table hippo_topic_cache (
    agent_id              text             not null default maim.agent_id()
                                           references agents (id) on delete cascade,
    id                    uuid             not null default gen_random_uuid(),
    chat_id               text             not null,
    topics_payload        text,
    last_topic_check_time double precision not null default 0,
    updated_at            timestamptz      not null default now(),
    primary key (agent_id, id),
    -- summariser, every 60 s per chat: get_or_none(chat_id = ?)
    unique (agent_id, chat_id)
);

-- hippo_batch_state ------------------------------------------------------------------------
-- The chat-history summariser's current batch window, per chat.
create table hippo_batch_state (
    agent_id   text             not null default maim.agent_id()
                                references agents (id) on delete cascade,
    id         uuid             not null default gen_random_uuid(),
    chat_id    text             not null,
    start_time double precision,
    end_time   double precision,
    updated_at timestamptz      not null default now(),
    primary key (agent_id, id),
    -- summariser, every 60 s per chat: get_or_none(chat_id = ?)
    unique (agent_id, chat_id)
);

-- updated_at -------------------------------------------------------------------------------
create trigger set_updated_at before update on runtime_state
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on hippo_topic_cache
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on hippo_batch_state
    for each row execute function maim.set_updated_at();

-- row-level security, grants and policies --------------------------------------------------
call maim.isolate_agent_table('chat_streams');
call maim.isolate_agent_table('messages');
call maim.isolate_agent_table('action_records');
call maim.isolate_agent_table('llm_usage');
call maim.isolate_agent_table('emoji');
call maim.isolate_agent_table('images');
call maim.isolate_agent_table('image_descriptions');
call maim.isolate_agent_table('emoji_description_cache');
call maim.isolate_agent_table('online_time');
call maim.isolate_agent_table('person_info');
call maim.isolate_agent_table('group_info');
call maim.isolate_agent_table('expression');
call maim.isolate_agent_table('jargon');
call maim.isolate_agent_table('chat_history_summary');
call maim.isolate_agent_table('thinking_back');
call maim.isolate_agent_table('runtime_state');
call maim.isolate_agent_table('hippo_topic_cache');
call maim.isolate_agent_table('hippo_batch_state');

-- Agent configuration: the 26 sections of the original's core/models/agent_config.py, one
-- table each. The original created only 15 of them (a shorter list shadowed the full one),
-- so model_config_overrides and the ten LPMM/dream/... tables exist here for the first time.
--
-- One row per agent for every section except api_provider_configs and model_info_configs:
-- the primary key is agent_id itself. The original keyed each row by a random
-- 'config_<12 hex>' id and indexed agent_id without making it unique, so an agent could end
-- up with several rows and reads returned an arbitrary one. That id is gone.
--
-- Defaults are the original's Python defaults, now SQL defaults, so a row inserted with
-- only its agent (or by raw SQL) is the same row the original's code would have built.
-- JSON held in Text columns is jsonb with its shape (array or object) checked. CharField
-- lengths are char_length CHECKs. Ranges are checked only where they are plain: chances,
-- rates, probabilities and similarity thresholds lie in [0, 1], counts and sizes are not
-- negative, and intervals, top-k values and worker counts are positive.
--
-- Every table goes through maim.isolate_agent_table (migration 0002): RLS enabled and
-- forced, maim_app sees only its own agent's rows, maim_tenant reads its agents' rows,
-- maim_admin everything.

-- personality_configs ----------------------------------------------------------------------
create table personality_configs (
    agent_id           text             primary key default maim.agent_id()
                                        references agents (id) on delete cascade,
    personality        text             not null,
    reply_style        text             not null default '' check (char_length(reply_style) <= 500),
    interest           text             not null default '' check (char_length(interest) <= 500),
    plan_style         text             not null default '' check (char_length(plan_style) <= 500),
    private_plan_style text             not null default ''
                                        check (char_length(private_plan_style) <= 500),
    visual_style       text             not null default '' check (char_length(visual_style) <= 500),
    states             jsonb            not null default '[]' check (jsonb_typeof(states) = 'array'),
    state_probability  double precision not null default 0.0
                                        check (state_probability between 0 and 1),
    created_at         timestamptz      not null default now(),
    updated_at         timestamptz      not null default now()
);

-- bot_config_overrides ---------------------------------------------------------------------
create table bot_config_overrides (
    agent_id    text        primary key default maim.agent_id()
                            references agents (id) on delete cascade,
    platform    text        not null default '' check (char_length(platform) <= 50),
    qq_account  text        not null default '' check (char_length(qq_account) <= 50),
    nickname    text        not null default '' check (char_length(nickname) <= 100),
    platforms   jsonb       not null default '[]' check (jsonb_typeof(platforms) = 'array'),
    alias_names jsonb       not null default '[]' check (jsonb_typeof(alias_names) = 'array'),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- chat_config_overrides --------------------------------------------------------------------
create table chat_config_overrides (
    agent_id                     text             primary key default maim.agent_id()
                                                  references agents (id) on delete cascade,
    max_context_size             integer          not null default 18
                                                  check (max_context_size >= 0),
    interest_rate_mode           text             not null default 'fast'
                                                  check (char_length(interest_rate_mode) <= 20),
    planner_size                 double precision not null default 1.5 check (planner_size >= 0),
    mentioned_bot_reply          boolean          not null default true,
    auto_chat_value              double precision not null default 1.0
                                                  check (auto_chat_value >= 0),
    enable_auto_chat_value_rules boolean          not null default true,
    at_bot_inevitable_reply      double precision not null default 1.0
                                                  check (at_bot_inevitable_reply >= 0),
    planner_smooth               double precision not null default 3.0
                                                  check (planner_smooth >= 0),
    talk_value                   double precision not null default 1.0 check (talk_value >= 0),
    enable_talk_value_rules      boolean          not null default true,
    talk_value_rules             jsonb            not null default '[]'
                                                  check (jsonb_typeof(talk_value_rules) = 'array'),
    auto_chat_value_rules        jsonb            not null default '[]'
                                                  check (jsonb_typeof(auto_chat_value_rules) = 'array'),
    created_at                   timestamptz      not null default now(),
    updated_at                   timestamptz      not null default now()
);

-- expression_config_overrides --------------------------------------------------------------
create table expression_config_overrides (
    agent_id            text        primary key default maim.agent_id()
                                    references agents (id) on delete cascade,
    mode                text        not null default 'classic' check (char_length(mode) <= 20),
    learning_list       jsonb       not null default '[]'
                                    check (jsonb_typeof(learning_list) = 'array'),
    expression_groups   jsonb       not null default '[]'
                                    check (jsonb_typeof(expression_groups) = 'array'),
    reflect             boolean     not null default false,
    reflect_operator_id text        not null default ''
                                    check (char_length(reflect_operator_id) <= 50),
    allow_reflect       jsonb       not null default '[]'
                                    check (jsonb_typeof(allow_reflect) = 'array'),
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);

-- memory_config_overrides ------------------------------------------------------------------
create table memory_config_overrides (
    agent_id                text        primary key default maim.agent_id()
                                        references agents (id) on delete cascade,
    max_memory_number       integer     not null default 100 check (max_memory_number >= 0),
    memory_build_frequency  integer     not null default 1 check (memory_build_frequency >= 0),
    max_agent_iterations    integer     not null default 5 check (max_agent_iterations > 0),
    enable_jargon_detection boolean     not null default true,
    created_at              timestamptz not null default now(),
    updated_at              timestamptz not null default now()
);

-- mood_config_overrides --------------------------------------------------------------------
-- mood_update_threshold is a slowness factor in MaiBot (higher updates more slowly), not a
-- probability, so it is only kept non-negative.
create table mood_config_overrides (
    agent_id              text             primary key default maim.agent_id()
                                           references agents (id) on delete cascade,
    enable_mood           boolean          not null default true,
    mood_update_threshold double precision not null default 1.0
                                           check (mood_update_threshold >= 0),
    emotion_style         text             not null default ''
                                           check (char_length(emotion_style) <= 200),
    created_at            timestamptz      not null default now(),
    updated_at            timestamptz      not null default now()
);

-- emoji_config_overrides -------------------------------------------------------------------
create table emoji_config_overrides (
    agent_id           text             primary key default maim.agent_id()
                                        references agents (id) on delete cascade,
    emoji_chance       double precision not null default 0.6 check (emoji_chance between 0 and 1),
    max_reg_num        integer          not null default 200 check (max_reg_num >= 0),
    do_replace         boolean          not null default true,
    check_interval     integer          not null default 120 check (check_interval > 0),
    steal_emoji        boolean          not null default true,
    content_filtration boolean          not null default false,
    filtration_prompt  text             not null default ''
                                        check (char_length(filtration_prompt) <= 200),
    created_at         timestamptz      not null default now(),
    updated_at         timestamptz      not null default now()
);

-- tool_config_overrides --------------------------------------------------------------------
create table tool_config_overrides (
    agent_id    text        primary key default maim.agent_id()
                            references agents (id) on delete cascade,
    enable_tool boolean     not null default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- voice_config_overrides -------------------------------------------------------------------
create table voice_config_overrides (
    agent_id   text        primary key default maim.agent_id()
                           references agents (id) on delete cascade,
    enable_asr boolean     not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- plugin_config_overrides ------------------------------------------------------------------
create table plugin_config_overrides (
    agent_id                    text        primary key default maim.agent_id()
                                            references agents (id) on delete cascade,
    enable_plugins              boolean     not null default true,
    tenant_mode_disable_plugins boolean     not null default true,
    allowed_plugins             jsonb       not null default '[]'
                                            check (jsonb_typeof(allowed_plugins) = 'array'),
    blocked_plugins             jsonb       not null default '[]'
                                            check (jsonb_typeof(blocked_plugins) = 'array'),
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now()
);

-- keyword_reaction_config_overrides --------------------------------------------------------
create table keyword_reaction_config_overrides (
    agent_id      text        primary key default maim.agent_id()
                              references agents (id) on delete cascade,
    keyword_rules jsonb       not null default '[]' check (jsonb_typeof(keyword_rules) = 'array'),
    regex_rules   jsonb       not null default '[]' check (jsonb_typeof(regex_rules) = 'array'),
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- relationship_config_overrides ------------------------------------------------------------
-- The original's table was "relationshipconfigoverrides" (no Meta, so Peewee's default name).
create table relationship_config_overrides (
    agent_id            text        primary key default maim.agent_id()
                                    references agents (id) on delete cascade,
    enable_relationship boolean     not null default true,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);

-- message_receive_config_overrides ---------------------------------------------------------
create table message_receive_config_overrides (
    agent_id       text        primary key default maim.agent_id()
                               references agents (id) on delete cascade,
    ban_words      jsonb       not null default '[]' check (jsonb_typeof(ban_words) = 'array'),
    ban_msgs_regex jsonb       not null default '[]' check (jsonb_typeof(ban_msgs_regex) = 'array'),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);

-- api_provider_configs ---------------------------------------------------------------------
-- Many per agent, unique by name. base_url and api_key stay plaintext text for now (the
-- original's shape), a later migration encrypts them.
create table api_provider_configs (
    agent_id           text        not null default maim.agent_id()
                                   references agents (id) on delete cascade,
    id                 uuid        not null default gen_random_uuid(),
    name               text        not null check (char_length(name) between 1 and 100),
    client_type        text        not null default 'openai' check (char_length(client_type) <= 50),
    base_url           text        check (char_length(base_url) <= 500),
    api_key            text        check (char_length(api_key) <= 500),
    is_server_provider boolean     not null default false,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    primary key (agent_id, id),
    unique (agent_id, name)
);

-- model_info_configs -----------------------------------------------------------------------
-- Many per agent, unique by name. provider_name names an api_provider_configs row of the
-- same agent but is deliberately not a foreign key, as in the original: models are upserted
-- independently of providers (and default to provider ''), providers absent from an update
-- are kept, and MaiBot itself reports a model whose provider is missing when it loads.
create table model_info_configs (
    agent_id         text             not null default maim.agent_id()
                                      references agents (id) on delete cascade,
    id               uuid             not null default gen_random_uuid(),
    name             text             not null check (char_length(name) between 1 and 100),
    model_identifier text             not null check (char_length(model_identifier) <= 100),
    provider_name    text             not null check (char_length(provider_name) <= 100),
    temperature      double precision check (temperature >= 0),
    price_in         double precision not null default 0.0 check (price_in >= 0),
    price_out        double precision not null default 0.0 check (price_out >= 0),
    extra_params     jsonb            not null default '{}'
                                      check (jsonb_typeof(extra_params) = 'object'),
    created_at       timestamptz      not null default now(),
    updated_at       timestamptz      not null default now(),
    primary key (agent_id, id),
    unique (agent_id, name)
);

-- model_config_overrides -------------------------------------------------------------------
-- models and api_providers are deprecated in the original (superseded by the two tables
-- above) but kept so existing payloads round-trip.
create table model_config_overrides (
    agent_id          text        primary key default maim.agent_id()
                                  references agents (id) on delete cascade,
    models            jsonb       not null default '[]' check (jsonb_typeof(models) = 'array'),
    api_providers     jsonb       not null default '[]'
                                  check (jsonb_typeof(api_providers) = 'array'),
    model_task_config jsonb       not null default '{}'
                                  check (jsonb_typeof(model_task_config) = 'object'),
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

-- lpmm_knowledge_configs -------------------------------------------------------------------
create table lpmm_knowledge_configs (
    agent_id                  text             primary key default maim.agent_id()
                                               references agents (id) on delete cascade,
    enable                    boolean          not null default false,
    lpmm_mode                 text             not null default ''
                                               check (char_length(lpmm_mode) <= 50),
    rag_synonym_search_top_k  integer          not null default 5
                                               check (rag_synonym_search_top_k > 0),
    rag_synonym_threshold     double precision not null default 0.8
                                               check (rag_synonym_threshold between 0 and 1),
    info_extraction_workers   integer          not null default 4
                                               check (info_extraction_workers > 0),
    qa_relation_search_top_k  integer          not null default 10
                                               check (qa_relation_search_top_k > 0),
    qa_relation_threshold     double precision not null default 0.6
                                               check (qa_relation_threshold between 0 and 1),
    qa_paragraph_search_top_k integer          not null default 5
                                               check (qa_paragraph_search_top_k > 0),
    qa_paragraph_node_weight  double precision not null default 0.5
                                               check (qa_paragraph_node_weight >= 0),
    qa_ent_filter_top_k       integer          not null default 10
                                               check (qa_ent_filter_top_k > 0),
    qa_ppr_damping            double precision not null default 0.85
                                               check (qa_ppr_damping between 0 and 1),
    qa_res_top_k              integer          not null default 3 check (qa_res_top_k > 0),
    embedding_dimension       integer          not null default 768
                                               check (embedding_dimension > 0),
    created_at                timestamptz      not null default now(),
    updated_at                timestamptz      not null default now()
);

-- dream_configs ----------------------------------------------------------------------------
create table dream_configs (
    agent_id         text        primary key default maim.agent_id()
                                 references agents (id) on delete cascade,
    interval_minutes integer     not null default 60 check (interval_minutes > 0),
    max_iterations   integer     not null default 3 check (max_iterations > 0),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

-- jargon_configs ---------------------------------------------------------------------------
create table jargon_configs (
    agent_id   text        primary key default maim.agent_id()
                           references agents (id) on delete cascade,
    all_global boolean     not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- response_post_process_configs ------------------------------------------------------------
create table response_post_process_configs (
    agent_id                     text        primary key default maim.agent_id()
                                             references agents (id) on delete cascade,
    enable_response_post_process boolean     not null default false,
    created_at                   timestamptz not null default now(),
    updated_at                   timestamptz not null default now()
);

-- chinese_typo_configs ---------------------------------------------------------------------
create table chinese_typo_configs (
    agent_id          text             primary key default maim.agent_id()
                                       references agents (id) on delete cascade,
    enable            boolean          not null default false,
    error_rate        double precision not null default 0.0 check (error_rate between 0 and 1),
    min_freq          integer          not null default 0 check (min_freq >= 0),
    tone_error_rate   double precision not null default 0.0
                                       check (tone_error_rate between 0 and 1),
    word_replace_rate double precision not null default 0.0
                                       check (word_replace_rate between 0 and 1),
    created_at        timestamptz      not null default now(),
    updated_at        timestamptz      not null default now()
);

-- response_splitter_configs ----------------------------------------------------------------
create table response_splitter_configs (
    agent_id                   text        primary key default maim.agent_id()
                                           references agents (id) on delete cascade,
    enable                     boolean     not null default false,
    max_length                 integer     not null default 100 check (max_length > 0),
    max_sentence_num           integer     not null default 5 check (max_sentence_num > 0),
    enable_kaomoji_protection  boolean     not null default true,
    enable_overflow_return_all boolean     not null default true,
    created_at                 timestamptz not null default now(),
    updated_at                 timestamptz not null default now()
);

-- debug_configs ----------------------------------------------------------------------------
create table debug_configs (
    agent_id               text        primary key default maim.agent_id()
                                       references agents (id) on delete cascade,
    show_prompt            boolean     not null default false,
    show_replyer_prompt    boolean     not null default false,
    show_replyer_reasoning boolean     not null default false,
    show_jargon_prompt     boolean     not null default false,
    show_memory_prompt     boolean     not null default false,
    show_planner_prompt    boolean     not null default false,
    show_lpmm_paragraph    boolean     not null default false,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now()
);

-- experimental_configs ---------------------------------------------------------------------
create table experimental_configs (
    agent_id           text        primary key default maim.agent_id()
                                   references agents (id) on delete cascade,
    enable_friend_chat boolean     not null default false,
    chat_prompts       jsonb       not null default '[]' check (jsonb_typeof(chat_prompts) = 'array'),
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

-- maim_message_configs ---------------------------------------------------------------------
-- auth_token is a JSON array of tokens in plaintext, as in the original.
create table maim_message_configs (
    agent_id   text        primary key default maim.agent_id()
                           references agents (id) on delete cascade,
    use_custom boolean     not null default false,
    host       text        not null default '' check (char_length(host) <= 100),
    port       integer     not null default 0 check (port between 0 and 65535),
    mode       text        not null default '' check (char_length(mode) <= 50),
    use_wss    boolean     not null default false,
    cert_file  text        not null default '' check (char_length(cert_file) <= 200),
    key_file   text        not null default '' check (char_length(key_file) <= 200),
    auth_token jsonb       not null default '[]' check (jsonb_typeof(auth_token) = 'array'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- telemetry_configs ------------------------------------------------------------------------
create table telemetry_configs (
    agent_id   text        primary key default maim.agent_id()
                           references agents (id) on delete cascade,
    enable     boolean     not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- updated_at (the original never refreshed it) ---------------------------------------------
create trigger set_updated_at before update on personality_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on bot_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on chat_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on expression_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on memory_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on mood_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on emoji_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on tool_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on voice_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on plugin_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on keyword_reaction_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on relationship_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on message_receive_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on api_provider_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on model_info_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on model_config_overrides
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on lpmm_knowledge_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on dream_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on jargon_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on response_post_process_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on chinese_typo_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on response_splitter_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on debug_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on experimental_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on maim_message_configs
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on telemetry_configs
    for each row execute function maim.set_updated_at();

-- row-level security, grants and policies --------------------------------------------------
call maim.isolate_agent_table('personality_configs');
call maim.isolate_agent_table('bot_config_overrides');
call maim.isolate_agent_table('chat_config_overrides');
call maim.isolate_agent_table('expression_config_overrides');
call maim.isolate_agent_table('memory_config_overrides');
call maim.isolate_agent_table('mood_config_overrides');
call maim.isolate_agent_table('emoji_config_overrides');
call maim.isolate_agent_table('tool_config_overrides');
call maim.isolate_agent_table('voice_config_overrides');
call maim.isolate_agent_table('plugin_config_overrides');
call maim.isolate_agent_table('keyword_reaction_config_overrides');
call maim.isolate_agent_table('relationship_config_overrides');
call maim.isolate_agent_table('message_receive_config_overrides');
call maim.isolate_agent_table('api_provider_configs');
call maim.isolate_agent_table('model_info_configs');
call maim.isolate_agent_table('model_config_overrides');
call maim.isolate_agent_table('lpmm_knowledge_configs');
call maim.isolate_agent_table('dream_configs');
call maim.isolate_agent_table('jargon_configs');
call maim.isolate_agent_table('response_post_process_configs');
call maim.isolate_agent_table('chinese_typo_configs');
call maim.isolate_agent_table('response_splitter_configs');
call maim.isolate_agent_table('debug_configs');
call maim.isolate_agent_table('experimental_configs');
call maim.isolate_agent_table('maim_message_configs');
call maim.isolate_agent_table('telemetry_configs');

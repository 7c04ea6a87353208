"""The agent configuration (0003) and business (0004) tables: the original's defaults, one
row per agent where the original meant one, the fixed uniqueness rules, CHECKs, the
updated_at trigger and cascade on agent delete. (Isolation of every table is held by
test_isolation_matrix.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from maim_db import ConflictError, InputError, connect
from maim_db.row import SERVER_DEFAULT, Row
from maim_db.tables import agent_config as ac
from maim_db.tables import business as bz
from maim_db.tables.agent_config import ROWS as CONFIG_ROWS
from maim_db.tables.business import ROWS as BUSINESS_ROWS
from tests.databases import TestDB, World

ALL = CONFIG_ROWS + BUSINESS_ROWS
SAMPLE: dict[Any, Any] = {str: "s", int: 1, float: 0.5, bool: True}

# The original's Python defaults (core/models/agent_config.py), now SQL defaults.
ORIGINAL_DEFAULTS: dict[type[Row], dict[str, Any]] = {
    ac.PersonalityConfig: dict(reply_style="", interest="", plan_style="",
                               private_plan_style="", visual_style="", states=[],
                               state_probability=0.0),
    ac.BotConfigOverrides: dict(platform="", qq_account="", nickname="", platforms=[],
                                alias_names=[]),
    ac.ChatConfigOverrides: dict(max_context_size=18, interest_rate_mode="fast",
                                 planner_size=1.5, mentioned_bot_reply=True,
                                 auto_chat_value=1.0, enable_auto_chat_value_rules=True,
                                 at_bot_inevitable_reply=1.0, planner_smooth=3.0,
                                 talk_value=1.0, enable_talk_value_rules=True,
                                 talk_value_rules=[], auto_chat_value_rules=[]),
    ac.ExpressionConfigOverrides: dict(mode="classic", learning_list=[], expression_groups=[],
                                       reflect=False, reflect_operator_id="",
                                       allow_reflect=[]),
    ac.MemoryConfigOverrides: dict(max_memory_number=100, memory_build_frequency=1,
                                   max_agent_iterations=5, enable_jargon_detection=True),
    ac.MoodConfigOverrides: dict(enable_mood=True, mood_update_threshold=1.0,
                                 emotion_style=""),
    ac.EmojiConfigOverrides: dict(emoji_chance=0.6, max_reg_num=200, do_replace=True,
                                  check_interval=120, steal_emoji=True,
                                  content_filtration=False, filtration_prompt=""),
    ac.ToolConfigOverrides: dict(enable_tool=False),
    ac.VoiceConfigOverrides: dict(enable_asr=False),
    ac.PluginConfigOverrides: dict(enable_plugins=True, tenant_mode_disable_plugins=True,
                                   allowed_plugins=[], blocked_plugins=[]),
    ac.KeywordReactionConfigOverrides: dict(keyword_rules=[], regex_rules=[]),
    ac.RelationshipConfigOverrides: dict(enable_relationship=True),
    ac.MessageReceiveConfigOverrides: dict(ban_words=[], ban_msgs_regex=[]),
    ac.ApiProviderConfig: dict(client_type="openai", base_url=None, api_key=None,
                               is_server_provider=False),
    ac.ModelInfoConfig: dict(temperature=None, price_in=0.0, price_out=0.0, extra_params={}),
    ac.ModelConfigOverrides: dict(models=[], api_providers=[], model_task_config={}),
    ac.LpmmKnowledgeConfig: dict(enable=False, lpmm_mode="", rag_synonym_search_top_k=5,
                                 rag_synonym_threshold=0.8, info_extraction_workers=4,
                                 qa_relation_search_top_k=10, qa_relation_threshold=0.6,
                                 qa_paragraph_search_top_k=5, qa_paragraph_node_weight=0.5,
                                 qa_ent_filter_top_k=10, qa_ppr_damping=0.85,
                                 qa_res_top_k=3, embedding_dimension=768),
    ac.DreamConfig: dict(interval_minutes=60, max_iterations=3),
    ac.JargonConfig: dict(all_global=False),
    ac.ResponsePostProcessConfig: dict(enable_response_post_process=False),
    ac.ChineseTypoConfig: dict(enable=False, error_rate=0.0, min_freq=0, tone_error_rate=0.0,
                               word_replace_rate=0.0),
    ac.ResponseSplitterConfig: dict(enable=False, max_length=100, max_sentence_num=5,
                                    enable_kaomoji_protection=True,
                                    enable_overflow_return_all=True),
    ac.DebugConfig: {f: False for f in ("show_prompt", "show_replyer_prompt",
                                        "show_replyer_reasoning", "show_jargon_prompt",
                                        "show_memory_prompt", "show_planner_prompt",
                                        "show_lpmm_paragraph")},
    ac.ExperimentalConfig: dict(enable_friend_chat=False, chat_prompts=[]),
    ac.MaimMessageConfig: dict(use_custom=False, host="", port=0, mode="", use_wss=False,
                               cert_file="", key_file="", auth_token=[]),
    ac.TelemetryConfig: dict(enable=True),
}


def sample(model: type[Row], **values: Any) -> Row:
    """A row of ``model`` with only its required fields, each set to a plain sample value."""
    for name, field in model.model_fields.items():
        if field.is_required() and name not in values:
            values[name] = SAMPLE[field.annotation]
    return model(**values)


def _count(dsn: str, model: type[Row], **scope: Any) -> int:
    with connect(dsn, **scope) as db:
        return int(db.scalar(f"select count(*) from {model.table}"))  # type: ignore[arg-type]


def test_rows_list_every_table_once_in_migration_order() -> None:
    assert len(CONFIG_ROWS) == 26 and len(BUSINESS_ROWS) == 5
    assert len({m.table for m in ALL}) == len(ALL)
    assert set(ORIGINAL_DEFAULTS) == set(CONFIG_ROWS)


def test_nullable_jsonb_columns_are_known_as_jsonb() -> None:
    # `JsonObject | None` keeps the jsonb marker inside the union, not on the field.
    assert bz.ChatHistory.jsonb_fields() == {"metadata"}
    assert bz.SystemMetric.jsonb_fields() == {"tags"}
    assert ac.ModelConfigOverrides.jsonb_fields() == {"models", "api_providers",
                                                      "model_task_config"}


@pytest.mark.parametrize("model", CONFIG_ROWS, ids=lambda m: m.table)
def test_config_defaults_are_the_originals(db: TestDB, world: World, model: type[Row]) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        row = app.insert(sample(model))
    assert row.model_dump(include=set(ORIGINAL_DEFAULTS[model])) == ORIGINAL_DEFAULTS[model]
    assert getattr(row, "agent_id") == world.agent_id("A1")  # noqa: B009
    for name, field in model.model_fields.items():
        assert getattr(row, name) is not SERVER_DEFAULT, name
        if field.is_required() or name in ("agent_id", "id", "created_at", "updated_at"):
            continue
        assert name in ORIGINAL_DEFAULTS[model], f"{name}: no original default recorded"


@pytest.mark.parametrize("model", [m for m in CONFIG_ROWS if m.key == ("agent_id",)],
                         ids=lambda m: m.table)
def test_one_config_row_per_agent(db: TestDB, world: World, model: type[Row]) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(sample(model))
    with pytest.raises(ConflictError), connect(db.dsn("app"),
                                               agent_id=world.agent_id("A1")) as app:
        app.insert(sample(model))


def test_provider_and_model_names_are_unique_per_agent(db: TestDB, world: World) -> None:
    for agent in ("A1", "B1"):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as app:
            app.insert(ac.ApiProviderConfig(name="siliconflow", api_key="sk-1"))
            app.insert(ac.ModelInfoConfig(name="ds-v3", model_identifier="deepseek-v3",
                                          provider_name="siliconflow"))
            # provider_name is not a foreign key: a model may name a provider not stored.
            app.insert(ac.ModelInfoConfig(name="other", model_identifier="m",
                                          provider_name=""))
    for model, name in ((ac.ApiProviderConfig, "siliconflow"), (ac.ModelInfoConfig, "ds-v3")):
        with pytest.raises(ConflictError), connect(db.dsn("app"),
                                                   agent_id=world.agent_id("A1")) as app:
            app.insert(sample(model, name=name))


@pytest.mark.parametrize("statement", [
    "insert into emoji_config_overrides (emoji_chance) values (1.5)",
    "insert into personality_configs (personality, state_probability) values ('p', -0.1)",
    "insert into chinese_typo_configs (error_rate) values (2)",
    "insert into lpmm_knowledge_configs (qa_ppr_damping) values (1.01)",
    "insert into maim_message_configs (port) values (65536)",
    "insert into dream_configs (interval_minutes) values (0)",
    "insert into bot_config_overrides (platforms) values ('{}')",
    "insert into model_info_configs (name, model_identifier, provider_name, extra_params) "
    "values ('m', 'm', 'p', '[]')",
    "insert into personality_configs (personality, reply_style) values ('p', repeat('x', 501))",
    "insert into file_uploads (original_filename, stored_filename, file_path, file_size, "
    "mime_type, file_hash, user_id) values ('a', 'b', 'c', -1, 'd', 'e', 'u')",
    "insert into chat_logs (session_id, request_type, request_content, status_code, user_id, "
    "token_count) values ('s', 'chat', 'hi', 200, 'u', -5)",
])
def test_checks_reject_out_of_range_values(db: TestDB, world: World, statement: str) -> None:
    with pytest.raises(InputError), connect(db.dsn("app"),
                                            agent_id=world.agent_id("A1")) as app:
        app.execute(statement)  # type: ignore[arg-type]


def test_a_session_holds_many_history_and_log_rows(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        for i in range(3):
            app.insert(bz.ChatHistory(session_id="s1", user_message=f"q{i}",
                                      assistant_message=f"a{i}", user_id="u",
                                      metadata={"turn": i}))
            app.insert(bz.ChatLog(session_id="s1", request_type="chat", request_content="q",
                                  status_code=200, user_id="u"))
        assert app.scalar("select count(*) from chat_history where session_id = 's1'") == 3
        assert app.scalar("select count(*) from chat_logs where session_id = 's1'") == 3


def test_session_ids_and_file_hashes_are_unique_per_agent(db: TestDB, world: World) -> None:
    upload = dict(original_filename="a.png", stored_filename="x.png", file_path="/f/x.png",
                  file_size=10, mime_type="image/png", file_hash="ab" * 32, user_id="u")
    for agent in ("A1", "B1"):  # the same ids in two agents: fine (globally unique before)
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as app:
            app.insert(bz.UserSession(session_id="s1", user_id="u"))
            app.insert(bz.FileUpload(**upload))
    with pytest.raises(ConflictError), connect(db.dsn("app"),
                                               agent_id=world.agent_id("A1")) as app:
        app.insert(bz.UserSession(session_id="s1", user_id="other"))
    with pytest.raises(ConflictError), connect(db.dsn("app"),
                                               agent_id=world.agent_id("A1")) as app:
        app.insert(bz.FileUpload(**upload))


def test_updated_at_moves_on_update(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        before = app.insert(ac.ChatConfigOverrides())
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.execute("update chat_config_overrides set talk_value = 0.5")
        after = app.get(ac.ChatConfigOverrides, world.agent_id("A1"))
    assert after.talk_value == 0.5
    assert after.created_at == before.created_at and after.updated_at > before.updated_at


def _fill(db: TestDB, world: World, agent: str) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as app:
        for model in ALL:
            app.insert(sample(model))


@pytest.mark.fresh_db  # counts rows across agents
def test_deleting_an_agent_deletes_its_rows(db: TestDB, world: World) -> None:
    _fill(db, world, "A1")
    _fill(db, world, "A2")
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("delete from agents where id = %s", [world.agent_id("A1")])
        for model in ALL:
            assert adm.scalar(f"select count(*) from {model.table}") == 1  # type: ignore[arg-type]

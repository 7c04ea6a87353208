"""Agent configuration rows (migrations/0003_agent_config.sql).

One row per agent (key ``agent_id``) for every section except the API providers and model
infos, which are many per agent, named uniquely within it (key ``(agent_id, id)``).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ..row import JsonArray, JsonObject, Row, server_default


class PersonalityConfig(Row):
    table: ClassVar[str] = "personality_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    personality: str
    reply_style: str = server_default()
    interest: str = server_default()
    plan_style: str = server_default()
    private_plan_style: str = server_default()
    visual_style: str = server_default()
    states: JsonArray = server_default()
    state_probability: float = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class BotConfigOverrides(Row):
    table: ClassVar[str] = "bot_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    platform: str = server_default()
    qq_account: str = server_default()
    nickname: str = server_default()
    platforms: JsonArray = server_default()
    alias_names: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ChatConfigOverrides(Row):
    table: ClassVar[str] = "chat_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    max_context_size: int = server_default()
    interest_rate_mode: str = server_default()
    planner_size: float = server_default()
    mentioned_bot_reply: bool = server_default()
    auto_chat_value: float = server_default()
    enable_auto_chat_value_rules: bool = server_default()
    at_bot_inevitable_reply: float = server_default()
    planner_smooth: float = server_default()
    talk_value: float = server_default()
    enable_talk_value_rules: bool = server_default()
    talk_value_rules: JsonArray = server_default()
    auto_chat_value_rules: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ExpressionConfigOverrides(Row):
    table: ClassVar[str] = "expression_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    mode: str = server_default()
    learning_list: JsonArray = server_default()
    expression_groups: JsonArray = server_default()
    reflect: bool = server_default()
    reflect_operator_id: str = server_default()
    allow_reflect: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class MemoryConfigOverrides(Row):
    table: ClassVar[str] = "memory_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    max_memory_number: int = server_default()
    memory_build_frequency: int = server_default()
    max_agent_iterations: int = server_default()
    enable_jargon_detection: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class MoodConfigOverrides(Row):
    table: ClassVar[str] = "mood_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_mood: bool = server_default()
    mood_update_threshold: float = server_default()
    emotion_style: str = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class EmojiConfigOverrides(Row):
    table: ClassVar[str] = "emoji_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    emoji_chance: float = server_default()
    max_reg_num: int = server_default()
    do_replace: bool = server_default()
    check_interval: int = server_default()
    steal_emoji: bool = server_default()
    content_filtration: bool = server_default()
    filtration_prompt: str = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ToolConfigOverrides(Row):
    table: ClassVar[str] = "tool_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_tool: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class VoiceConfigOverrides(Row):
    table: ClassVar[str] = "voice_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_asr: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class PluginConfigOverrides(Row):
    table: ClassVar[str] = "plugin_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_plugins: bool = server_default()
    tenant_mode_disable_plugins: bool = server_default()
    allowed_plugins: JsonArray = server_default()
    blocked_plugins: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class KeywordReactionConfigOverrides(Row):
    table: ClassVar[str] = "keyword_reaction_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    keyword_rules: JsonArray = server_default()
    regex_rules: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class RelationshipConfigOverrides(Row):
    """The original's ``relationshipconfigoverrides`` table."""

    table: ClassVar[str] = "relationship_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_relationship: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class MessageReceiveConfigOverrides(Row):
    table: ClassVar[str] = "message_receive_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    ban_words: JsonArray = server_default()
    ban_msgs_regex: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ApiProviderConfig(Row):
    """An LLM API provider of the agent (the original's ``APIProviderModel``).

    ``base_url`` and ``api_key`` are stored sealed (:mod:`maim_db.control.sealed`); read them
    through :func:`maim_db.control.config.read`, which opens them only when asked to reveal.
    """

    table: ClassVar[str] = "api_provider_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    name: str
    client_type: str = server_default()
    base_url: str | None = None
    api_key: str | None = None
    is_server_provider: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ModelInfoConfig(Row):
    """A model the agent may use (the original's ``ModelInfoModel``); ``provider_name`` names
    an :class:`ApiProviderConfig` of the same agent, unchecked, as in the original."""

    table: ClassVar[str] = "model_info_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    name: str
    model_identifier: str
    provider_name: str
    temperature: float | None = None
    price_in: float = server_default()
    price_out: float = server_default()
    extra_params: JsonObject = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ModelConfigOverrides(Row):
    """``model_task_config`` is current; ``models`` and ``api_providers`` are deprecated."""

    table: ClassVar[str] = "model_config_overrides"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    models: JsonArray = server_default()
    api_providers: JsonArray = server_default()
    model_task_config: JsonObject = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class LpmmKnowledgeConfig(Row):
    """The original's ``LPMMKnowledgeConfig``."""

    table: ClassVar[str] = "lpmm_knowledge_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable: bool = server_default()
    lpmm_mode: str = server_default()
    rag_synonym_search_top_k: int = server_default()
    rag_synonym_threshold: float = server_default()
    info_extraction_workers: int = server_default()
    qa_relation_search_top_k: int = server_default()
    qa_relation_threshold: float = server_default()
    qa_paragraph_search_top_k: int = server_default()
    qa_paragraph_node_weight: float = server_default()
    qa_ent_filter_top_k: int = server_default()
    qa_ppr_damping: float = server_default()
    qa_res_top_k: int = server_default()
    embedding_dimension: int = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class DreamConfig(Row):
    table: ClassVar[str] = "dream_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    interval_minutes: int = server_default()
    max_iterations: int = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class JargonConfig(Row):
    table: ClassVar[str] = "jargon_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    all_global: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ResponsePostProcessConfig(Row):
    table: ClassVar[str] = "response_post_process_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_response_post_process: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ChineseTypoConfig(Row):
    table: ClassVar[str] = "chinese_typo_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable: bool = server_default()
    error_rate: float = server_default()
    min_freq: int = server_default()
    tone_error_rate: float = server_default()
    word_replace_rate: float = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ResponseSplitterConfig(Row):
    table: ClassVar[str] = "response_splitter_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable: bool = server_default()
    max_length: int = server_default()
    max_sentence_num: int = server_default()
    enable_kaomoji_protection: bool = server_default()
    enable_overflow_return_all: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class DebugConfig(Row):
    table: ClassVar[str] = "debug_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    show_prompt: bool = server_default()
    show_replyer_prompt: bool = server_default()
    show_replyer_reasoning: bool = server_default()
    show_jargon_prompt: bool = server_default()
    show_memory_prompt: bool = server_default()
    show_planner_prompt: bool = server_default()
    show_lpmm_paragraph: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ExperimentalConfig(Row):
    table: ClassVar[str] = "experimental_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable_friend_chat: bool = server_default()
    chat_prompts: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class MaimMessageConfig(Row):
    """``auth_token`` is a JSON array of tokens, each sealed (:mod:`maim_db.control.sealed`)."""

    table: ClassVar[str] = "maim_message_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    use_custom: bool = server_default()
    host: str = server_default()
    port: int = server_default()
    mode: str = server_default()
    use_wss: bool = server_default()
    cert_file: str = server_default()
    key_file: str = server_default()
    auth_token: JsonArray = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class TelemetryConfig(Row):
    table: ClassVar[str] = "telemetry_configs"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    enable: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


ROWS: tuple[type[Row], ...] = (
    PersonalityConfig,
    BotConfigOverrides,
    ChatConfigOverrides,
    ExpressionConfigOverrides,
    MemoryConfigOverrides,
    MoodConfigOverrides,
    EmojiConfigOverrides,
    ToolConfigOverrides,
    VoiceConfigOverrides,
    PluginConfigOverrides,
    KeywordReactionConfigOverrides,
    RelationshipConfigOverrides,
    MessageReceiveConfigOverrides,
    ApiProviderConfig,
    ModelInfoConfig,
    ModelConfigOverrides,
    LpmmKnowledgeConfig,
    DreamConfig,
    JargonConfig,
    ResponsePostProcessConfig,
    ChineseTypoConfig,
    ResponseSplitterConfig,
    DebugConfig,
    ExperimentalConfig,
    MaimMessageConfig,
    TelemetryConfig,
)

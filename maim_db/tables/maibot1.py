"""MaiBot 1.x rows (migrations/0020_maibot1.sql): the 24 tables of MaiBot 1.2.1's
``src/common/database/database_model.py``, in the PostgreSQL schema ``maibot1``.

One class per table under 1.2.1's SQLModel class name (so they live here, not in
:mod:`maim_db.tables`, where ``Expression``, ``Jargon``, ``PersonInfo`` and ``OnlineTime`` are
0.x's); field names and order are the table's columns, which are 1.2.1's own plus
``agent_id`` first. ``maisaka_reply_effects`` keeps its physical column ``scorer_version``
(1.2.1's attribute ``evaluation_version`` maps onto it). This is the one Python description
of the 1.x schema: maim_db.sqlmodel builds its SQLModel classes from it and the 1.x importer
writes these tables; ``tests/test_schema_contract.py`` holds it equal to the catalog.

Type mapping (docs/decisions.md, "MaiBot 1.x tables"): every integer is ``bigint`` (SQLite's
INTEGER is 64-bit, so whatever a 1.x file holds fits) and every ``id`` is a 53-bit one filled
by ``maim.maibot1_id()``; ``DateTime`` is ``timestamptz``; ``String(n)`` is ``text`` without
a length check (SQLite never enforced ``n``, so a 1.x file may exceed it); JSON stays text;
``LargeBinary`` is ``bytea``; 1.2.1's enums are ``text`` holding what SQLAlchemy stores (the
member *names* for ``Enum`` columns), with a CHECK of them. Nullability is 1.2.1's DDL:
``sa_column=Column(DateTime)`` is nullable there, so it is here. A default is 1.2.1's
Python default where it is a constant; ``datetime.now`` factories are the SQLModel layer's
(it knows ``MAIMDB_TIMEZONE``); 1.2.1's ``server_default`` columns have the same SQL default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from ..row import SERVER_DEFAULT, BigInt, Row, server_default

#: ``images.image_type``: SQLAlchemy's ``Enum(ImageType)`` stores the member names.
ImageTypeName = Literal["EMOJI", "IMAGE"]
#: ``expressions.modified_by``: ``Enum(ModifiedBy)``, names (equal to the values).
ModifiedByName = Literal["AI", "USER"]
#: ``jargons.created_by``: a ``String(6)`` holding ``JargonCreatedBy``'s values.
JargonCreatedByValue = Literal["AI", "MANUAL"]


class MaiBot1Row(Row):
    """A row of a table in ``maibot1``; every such table is an agent table."""

    pg_schema: ClassVar[str] = "maibot1"

    def given(self) -> dict[str, Any]:
        """The columns to INSERT: those set, and those left at 1.2.1's Python default, which
        the table does not repeat as an SQL default (1.x's DDL has none; only
        :func:`server_default` fields are left to the database)."""
        fields = type(self).model_fields
        return {name: getattr(self, name) for name, field in fields.items()
                if name in self.model_fields_set or field.default is not SERVER_DEFAULT}


class Messages(MaiBot1Row):
    """One stored message (1.x's ``mai_messages``); ``raw_content`` is msgpack bytes."""

    table: ClassVar[str] = "mai_messages"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    message_id: str
    timestamp: datetime | None = None
    platform: str
    user_id: str
    user_nickname: str
    user_cardname: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    is_mentioned: bool = False
    is_at: bool = False
    session_id: str
    reply_to: str | None = None
    is_emoji: bool = False
    is_picture: bool = False
    is_command: bool = False
    is_notify: bool = False
    raw_content: bytes | None = None
    processed_plain_text: str | None = None
    additional_config: str | None = None
    reply_frequency: float | None = None


class ModelUsage(MaiBot1Row):
    """One LLM request (1.x's ``llm_usage``)."""

    table: ClassVar[str] = "llm_usage"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    model_name: str
    model_assign_name: str | None = None
    model_api_provider_name: str
    session_id: str = ""
    task_name: str | None = None
    request_type: str
    time_cost: float | None = None
    timestamp: datetime | None = None
    prompt_tokens: BigInt
    completion_tokens: BigInt
    total_tokens: BigInt
    prompt_cache_enabled: bool = server_default()
    prompt_cache_hit_tokens: BigInt = server_default()
    prompt_cache_miss_tokens: BigInt = server_default()
    cost: float


class Images(MaiBot1Row):
    """One emoji or picture (1.x merged 0.x's two tables)."""

    table: ClassVar[str] = "images"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    image_hash: str
    description: str
    full_path: str
    image_type: ImageTypeName | None = None
    query_count: BigInt = 0
    is_registered: bool = False
    is_banned: bool = False
    no_file_flag: bool = False
    record_time: datetime | None = None
    register_time: datetime | None = None
    last_used_time: datetime | None = None
    vlm_processed: bool = False


class ToolRecord(MaiBot1Row):
    """One tool call."""

    table: ClassVar[str] = "tool_records"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    tool_id: str
    timestamp: datetime | None = None
    session_id: str
    tool_name: str
    tool_reasoning: str | None = None
    tool_data: str | None = None


class MaisakaMonitorEventRecord(MaiBot1Row):
    """One event of the monitor's ledger; ``timestamp`` is epoch seconds, as 1.x keeps it."""

    table: ClassVar[str] = "maisaka_monitor_events"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "event_id")

    agent_id: str = server_default()
    event_id: BigInt = server_default()
    event_type: str
    session_id: str = ""
    timestamp: float
    schema_version: BigInt = server_default()
    payload_json: str
    created_at: datetime | None = None


class MaisakaReplyEffect(MaiBot1Row):
    """One reply's effect record, keyed by 1.x's own UUID text."""

    table: ClassVar[str] = "maisaka_reply_effects"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "effect_id")

    agent_id: str = server_default()
    effect_id: str
    session_id: str
    session_name: str = ""
    chat_type: str = "group"
    status: str
    created_at: datetime | None = None
    finalized_at: datetime | None = None
    strategy_primary: str = "other"
    model_name: str = ""
    request_fingerprint: str = ""
    prompt_fingerprint: str = ""
    scorer_version: BigInt = 2
    response_score: float | None = None
    reception_score: float | None = None
    conversation_score: float | None = None
    raw_score: float | None = None
    relative_score: float | None = None
    confidence: float = server_default()
    record_json: str = "{}"
    record_blob: bytes | None = None


class OneTimeMaintenanceTask(MaiBot1Row):
    """The state of one of 1.x's one-time maintenance jobs."""

    table: ClassVar[str] = "one_time_maintenance_tasks"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "task_name")

    agent_id: str = server_default()
    task_name: str
    phase: str
    status: str
    cursor_id: BigInt = 0
    stats_json: str = "{}"
    last_error: str | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None


class StatisticsAggregationCursor(MaiBot1Row):
    """How far the hourly statistics have read one source table."""

    table: ClassVar[str] = "statistics_aggregation_cursors"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "source_name")

    agent_id: str = server_default()
    source_name: str
    last_processed_id: BigInt = 0
    updated_at: datetime | None = None


class StatisticsMessageHourly(MaiBot1Row):
    """Messages per hour and chat."""

    table: ClassVar[str] = "statistics_message_hourly"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    bucket_time: datetime
    chat_id: str
    chat_name: str
    chat_type: str
    message_count: BigInt = 0
    latest_timestamp: datetime


class StatisticsToolHourly(MaiBot1Row):
    """Tool calls per hour and tool."""

    table: ClassVar[str] = "statistics_tool_hourly"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    bucket_time: datetime
    tool_name: str
    call_count: BigInt = 0


class StatisticsModelHourly(MaiBot1Row):
    """Model requests per hour, request type, model and provider."""

    table: ClassVar[str] = "statistics_model_hourly"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    bucket_time: datetime
    request_type: str
    module_name: str
    provider_name: str
    model_name: str
    request_count: BigInt = 0
    prompt_tokens: BigInt = 0
    completion_tokens: BigInt = 0
    total_tokens: BigInt = 0
    cost: float = 0.0
    time_cost_sum: float = 0.0
    time_cost_sq_sum: float = 0.0


class HighFrequencyTerm(MaiBot1Row):
    """One frequent word or phrase of a chat."""

    table: ClassVar[str] = "high_frequency_terms"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    chat_id: str
    term: str
    rank: BigInt = 0
    occurrence_count: BigInt = 0
    message_count: BigInt = 0
    frequency: float = 0.0
    message_frequency: float = 0.0
    created_at: datetime
    updated_at: datetime


class OnlineTime(MaiBot1Row):
    """One online period."""

    table: ClassVar[str] = "online_time"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    timestamp: datetime | None = None
    duration_minutes: BigInt
    start_timestamp: datetime | None = None
    end_timestamp: datetime | None = None


class Expression(MaiBot1Row):
    """One learned way of saying something."""

    table: ClassVar[str] = "expressions"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    situation: str
    style: str
    content_list: str
    count: BigInt = 0
    last_active_time: datetime | None = None
    create_time: datetime | None = None
    session_id: str | None = None
    checked: bool = False
    modified_by: ModifiedByName | None = None


class BehaviorExperiencePath(MaiBot1Row):
    """scene cluster → action → outcome, with its feedback."""

    table: ClassVar[str] = "behavior_experience_paths"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    session_id: str | None = None
    scene_cluster_id: BigInt
    action_id: BigInt
    outcome_id: BigInt
    actor_type: str = "other_user"
    learning_type: str = "observed_behavior"
    evidence_list: str = "[]"
    feedback_list: str = "[]"
    count: BigInt = 0
    activation_count: BigInt = 0
    success_count: BigInt = 0
    failure_count: BigInt = 0
    score: float = server_default()
    enabled: bool = server_default()
    last_active_time: datetime | None = None
    last_feedback_time: datetime | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class BehaviorSceneCluster(MaiBot1Row):
    """A cluster of scenes, as a distribution over tags."""

    table: ClassVar[str] = "behavior_scene_clusters"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    session_id: str | None = None
    tag_distribution: str = "[]"
    source_count: BigInt = 0
    update_time: datetime | None = None


class BehaviorSceneTagCluster(MaiBot1Row):
    """Which cluster a scene tag belongs to."""

    table: ClassVar[str] = "behavior_scene_tag_clusters"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    tag_kind: str
    tag: str
    cluster_key: str
    source_count: BigInt = 0
    update_time: datetime | None = None


class BehaviorAction(MaiBot1Row):
    """An action's text, shared by the paths that take it."""

    table: ClassVar[str] = "behavior_actions"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    session_id: str | None = None
    action: str
    action_hash: str
    source_count: BigInt = 0
    create_time: datetime | None = None
    update_time: datetime | None = None


class BehaviorOutcome(MaiBot1Row):
    """An outcome's text, shared by the paths that reach it."""

    table: ClassVar[str] = "behavior_outcomes"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    session_id: str | None = None
    outcome: str
    outcome_hash: str
    source_count: BigInt = 0
    create_time: datetime | None = None
    update_time: datetime | None = None


class Jargon(MaiBot1Row):
    """One slang term and what it means."""

    table: ClassVar[str] = "jargons"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    content: str
    evidence_messages: str | None = None
    meaning: str
    session_id_dict: str = "{}"
    count: BigInt = 0
    is_jargon: bool | None = False
    is_complete: bool = False
    is_global: bool = False
    last_inference_count: BigInt = 0
    created_by: JargonCreatedByValue = "AI"
    created_timestamp: datetime | None = None
    updated_timestamp: datetime | None = None


class BinaryData(MaiBot1Row):
    """A stored file, by the hash of its content."""

    table: ClassVar[str] = "binary_data"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    data_hash: str
    full_path: str


class PersonInfo(MaiBot1Row):
    """One person the bot knows; ``person_id`` is unique per agent."""

    table: ClassVar[str] = "person_info"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    is_known: bool = False
    person_id: str
    person_name: str | None = None
    name_reason: str | None = None
    platform: str
    user_id: str
    user_nickname: str
    group_cardname: str | None = None
    memory_points: str | None = None
    know_counts: BigInt = 0
    first_known_time: datetime | None = None
    last_known_time: datetime | None = None


class ChatSession(MaiBot1Row):
    """One conversation; ``session_id`` is unique per agent."""

    table: ClassVar[str] = "chat_sessions"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    session_id: str
    created_timestamp: datetime | None = None
    last_active_timestamp: datetime | None = None
    user_id: str | None = None
    user_nickname: str | None = None
    user_cardname: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    platform: str
    account_id: str | None = None
    scope: str | None = None


class BotPlatformAccount(MaiBot1Row):
    """A platform account an adapter reported for the bot."""

    table: ClassVar[str] = "bot_platform_accounts"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: BigInt = server_default()
    platform: str
    account_id: str
    disabled: bool = False
    first_seen_at: datetime
    last_seen_at: datetime
    disabled_at: datetime | None = None
    last_source: str = ""
    last_adapter_id: str | None = None
    last_plugin_id: str | None = None
    last_gateway_name: str | None = None


#: Every 1.x table's model, in 1.2.1's declaration order (which 0020 keeps).
ROWS: tuple[type[MaiBot1Row], ...] = (
    Messages, ModelUsage, Images, ToolRecord, MaisakaMonitorEventRecord, MaisakaReplyEffect,
    OneTimeMaintenanceTask, StatisticsAggregationCursor, StatisticsMessageHourly,
    StatisticsToolHourly, StatisticsModelHourly, HighFrequencyTerm, OnlineTime, Expression,
    BehaviorExperiencePath, BehaviorSceneCluster, BehaviorSceneTagCluster, BehaviorAction,
    BehaviorOutcome, Jargon, BinaryData, PersonInfo, ChatSession, BotPlatformAccount,
)

"""MaiBot runtime rows (migrations/0005_runtime.sql).

Field names and order are the table's columns, which are MaiBot's own, so a row converts to
and from MaiBot's peewee models by name. Times MaiBot keeps as epoch seconds are ``float``;
columns holding JSON stay ``str`` (MaiBot ``json.loads`` them), see docs/schema/runtime.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ..row import Row, server_default


class ChatStream(Row):
    """One conversation: a group, or a private chat."""

    table: ClassVar[str] = "chat_streams"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    stream_id: str
    create_time: float
    group_platform: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    last_active_time: float
    platform: str
    user_platform: str
    user_id: str
    user_nickname: str
    user_cardname: str | None = None


class Message(Row):
    """One stored message, received or sent by the bot."""

    table: ClassVar[str] = "messages"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    message_id: str
    time: float
    chat_id: str
    reply_to: str | None = None
    interest_value: float | None = None
    key_words: str | None = None
    key_words_lite: str | None = None
    is_mentioned: bool | None = None
    is_at: bool | None = None
    reply_probability_boost: float | None = None
    chat_info_stream_id: str
    chat_info_platform: str
    chat_info_user_platform: str
    chat_info_user_id: str
    chat_info_user_nickname: str
    chat_info_user_cardname: str | None = None
    chat_info_group_platform: str | None = None
    chat_info_group_id: str | None = None
    chat_info_group_name: str | None = None
    chat_info_create_time: float
    chat_info_last_active_time: float
    user_platform: str | None = None
    user_id: str | None = None
    user_nickname: str | None = None
    user_cardname: str | None = None
    processed_plain_text: str | None = None
    display_message: str | None = None
    priority_mode: str | None = None
    priority_info: str | None = None
    additional_config: str | None = None
    is_emoji: bool = server_default()
    is_picid: bool = server_default()
    is_command: bool = server_default()
    intercept_message_level: int = server_default()
    is_notify: bool = server_default()
    selected_expressions: str | None = None


class ActionRecord(Row):
    """One planner or action step."""

    table: ClassVar[str] = "action_records"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    action_id: str
    time: float
    action_reasoning: str | None = None
    action_name: str
    action_data: str
    action_done: bool = server_default()
    action_build_into_prompt: bool = server_default()
    action_prompt_display: str
    chat_id: str
    chat_info_stream_id: str
    chat_info_platform: str


class LLMUsage(Row):
    """One LLM call."""

    table: ClassVar[str] = "llm_usage"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    model_name: str
    model_assign_name: str | None = None
    model_api_provider: str | None = None
    user_id: str
    request_type: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    time_cost: float | None = None
    status: str
    timestamp: datetime


class Emoji(Row):
    """One emoji (sticker) of the library."""

    table: ClassVar[str] = "emoji"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    full_path: str
    format: str
    emoji_hash: str
    description: str
    query_count: int = server_default()
    is_registered: bool = server_default()
    is_banned: bool = server_default()
    emotion: str | None = None
    record_time: float
    register_time: float | None = None
    usage_count: int = server_default()
    last_used_time: float | None = None


class Image(Row):
    """One picture or emoji image seen."""

    table: ClassVar[str] = "images"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    image_id: str = server_default()
    emoji_hash: str
    description: str | None = None
    path: str
    count: int = server_default()
    timestamp: float
    type: str
    vlm_processed: bool = server_default()


class ImageDescription(Row):
    table: ClassVar[str] = "image_descriptions"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    type: str
    image_description_hash: str
    description: str
    timestamp: float


class EmojiDescriptionCache(Row):
    table: ClassVar[str] = "emoji_description_cache"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    emoji_hash: str
    description: str
    emotion_tags: str | None = None
    timestamp: float


class OnlineTime(Row):
    table: ClassVar[str] = "online_time"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    timestamp: str = server_default()
    duration: int
    start_timestamp: datetime = server_default()
    end_timestamp: datetime


class PersonInfo(Row):
    table: ClassVar[str] = "person_info"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    is_known: bool = server_default()
    person_id: str
    person_name: str | None = None
    name_reason: str | None = None
    platform: str
    user_id: str
    nickname: str | None = None
    group_nick_name: str | None = None
    memory_points: str | None = None
    know_times: float | None = None
    know_since: float | None = None
    last_know: float | None = None


class GroupInfo(Row):
    table: ClassVar[str] = "group_info"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    group_id: str
    group_name: str | None = None
    platform: str
    group_impression: str | None = None
    member_list: str | None = None
    topic: str | None = None
    create_time: float | None = None
    last_active: float | None = None
    member_count: int | None = server_default()


class Expression(Row):
    """One learned speaking style."""

    table: ClassVar[str] = "expression"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    situation: str
    style: str
    context: str | None = None
    content_list: str | None = None
    count: int = server_default()
    last_active_time: float
    chat_id: str
    create_date: float | None = None
    checked: bool = server_default()
    rejected: bool = server_default()
    modified_by: str | None = None


class Jargon(Row):
    table: ClassVar[str] = "jargon"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    content: str
    raw_content: str | None = None
    meaning: str | None = None
    chat_id: str
    is_global: bool = server_default()
    count: int = server_default()
    is_jargon: bool | None = None
    last_inference_count: int | None = None
    is_complete: bool = server_default()
    inference_with_context: str | None = None
    inference_content_only: str | None = None


class ChatHistorySummary(Row):
    """One closed topic's summary (MaiBot's ``chat_history``)."""

    table: ClassVar[str] = "chat_history_summary"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    chat_id: str
    start_time: float
    end_time: float
    original_text: str
    participants: str
    theme: str
    keywords: str
    summary: str
    key_point: str | None = None
    count: int = server_default()
    forget_times: int = server_default()


class ThinkingBack(Row):
    table: ClassVar[str] = "thinking_back"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    chat_id: str
    question: str
    context: str | None = None
    found_answer: bool = server_default()
    answer: str | None = None
    thinking_steps: str | None = None
    create_time: float
    update_time: float


class RuntimeState(Row):
    table: ClassVar[str] = "runtime_state"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    state_key: str
    state_value: str | None = None
    updated_at: datetime = server_default()


class HippoTopicCache(Row):
    table: ClassVar[str] = "hippo_topic_cache"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    chat_id: str
    topics_payload: str | None = None
    last_topic_check_time: float = server_default()
    updated_at: datetime = server_default()


class HippoBatchState(Row):
    table: ClassVar[str] = "hippo_batch_state"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    chat_id: str
    start_time: float | None = None
    end_time: float | None = None
    updated_at: datetime = server_default()


#: Every runtime model, in migration order.
ROWS: tuple[type[Row], ...] = (
    ChatStream, Message, ActionRecord, LLMUsage, Emoji, Image, ImageDescription,
    EmojiDescriptionCache, OnlineTime, PersonInfo, GroupInfo, Expression, Jargon,
    ChatHistorySummary, ThinkingBack, RuntimeState, HippoTopicCache, HippoBatchState,
)

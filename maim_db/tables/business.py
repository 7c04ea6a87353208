"""Business rows (migrations/0004_business.sql): chat history and logs, uploads, user
sessions and metrics, many per agent (key ``(agent_id, id)``)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ..row import JsonObject, Row, server_default


class ChatHistory(Row):
    table: ClassVar[str] = "chat_history"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    session_id: str
    user_message: str
    assistant_message: str
    user_id: str
    message_type: str = server_default()
    metadata: JsonObject | None = None
    created_at: datetime = server_default()


class ChatLog(Row):
    table: ClassVar[str] = "chat_logs"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    session_id: str
    request_type: str
    request_content: str
    response_content: str | None = None
    status_code: int
    error_message: str | None = None
    token_count: int | None = None
    response_time: float | None = None
    user_id: str
    metadata: JsonObject | None = None
    created_at: datetime = server_default()


class FileUpload(Row):
    table: ClassVar[str] = "file_uploads"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    original_filename: str
    stored_filename: str
    file_path: str
    file_size: int
    mime_type: str
    file_hash: str
    is_public: bool = server_default()
    download_url: str | None = None
    expires_at: datetime | None = None
    user_id: str
    metadata: JsonObject | None = None
    created_at: datetime = server_default()


class UserSession(Row):
    table: ClassVar[str] = "user_sessions"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    session_id: str
    user_id: str
    is_active: bool = server_default()
    last_activity: datetime = server_default()
    metadata: JsonObject | None = None
    created_at: datetime = server_default()
    expires_at: datetime | None = None


class SystemMetric(Row):
    table: ClassVar[str] = "system_metrics"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    metric_name: str
    metric_value: float
    metric_unit: str | None = None
    tags: JsonObject | None = None
    created_at: datetime = server_default()


ROWS: tuple[type[Row], ...] = (
    ChatHistory,
    ChatLog,
    FileUpload,
    UserSession,
    SystemMetric,
)

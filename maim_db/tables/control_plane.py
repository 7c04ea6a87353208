"""Control plane rows (migrations/0001_control_plane.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from ..row import BigInt, JsonObject, Row, server_default
from ..scope import Permission

TenantType = Literal["personal", "enterprise"]
TenantStatus = Literal["active", "inactive", "suspended"]
AgentStatus = Literal["active", "inactive", "suspended", "archived"]
ApiKeyStatus = Literal["active", "disabled", "expired"]


class User(Row):
    table: ClassVar[str] = "users"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    username: str
    email: str | None = None
    hashed_password: str
    is_active: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class UserProfile(Row):
    """A user as the tenant role may read it: every column but ``hashed_password``, which
    only ``maim_admin`` can select (migrations/0012)."""

    table: ClassVar[str] = "users"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    username: str
    email: str | None = None
    is_active: bool = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class Tenant(Row):
    table: ClassVar[str] = "tenants"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    tenant_name: str
    tenant_type: TenantType = server_default()
    description: str | None = None
    contact_email: str | None = None
    tenant_config: JsonObject = server_default()
    status: TenantStatus = server_default()
    owner_id: str | None = None
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class Agent(Row):
    table: ClassVar[str] = "agents"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    tenant_id: str
    name: str
    description: str | None = None
    template_id: str | None = None
    config: JsonObject = server_default()
    status: AgentStatus = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()


class ApiKey(Row):
    """A key's record; the secret itself is never stored, only ``key_hash``."""

    table: ClassVar[str] = "api_keys"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    tenant_id: str
    agent_id: str
    name: str
    description: str | None = None
    key_hash: bytes
    key_prefix: str
    permissions: list[Permission] = server_default()
    status: ApiKeyStatus = server_default()
    expires_at: datetime | None = None
    created_at: datetime = server_default()
    updated_at: datetime = server_default()
    replaced_by: str | None = None  # the key that rotated this one out (0006_access.sql)


class ApiKeyInfo(Row):
    """A key as a dashboard lists it (the view ``api_key_list``, 0012): every column but
    ``key_hash``, which only ``maim_admin`` can select, with its uses added up."""

    table: ClassVar[str] = "api_key_list"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: str
    tenant_id: str
    agent_id: str
    name: str
    description: str | None = None
    key_prefix: str
    permissions: list[Permission]
    status: ApiKeyStatus
    expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    replaced_by: str | None = None
    usage_count: BigInt
    last_used_at: datetime | None = None


class ApiKeyUsage(Row):
    """How often one backend has resolved a key (0012): each backend counts in its own row,
    so recording a use never waits for another transaction."""

    table: ClassVar[str] = "api_key_usage"
    key: ClassVar[tuple[str, ...]] = ("key_id", "backend")

    key_id: str
    backend: int
    tenant_id: str
    uses: BigInt
    last_used_at: datetime


class ApiKeyUsageRecent(ApiKeyUsage):
    """A backend's uses of a key not yet moved into :class:`ApiKeyUsage` (0022): its columns
    and ``since``, when it began counting them. Unlogged, so counting a use makes no WAL;
    what is not yet moved is lost in a crash (docs/control-plane.md)."""

    table: ClassVar[str] = "api_key_usage_recent"

    since: datetime


class AgentActiveState(Row):
    table: ClassVar[str] = "agent_active_states"
    key: ClassVar[tuple[str, ...]] = ("agent_id",)

    agent_id: str = server_default()
    tenant_id: str = server_default()
    last_seen_at: datetime = server_default()
    ttl_seconds: int = server_default()
    expires_at: datetime = server_default()


class PluginSetting(Row):
    table: ClassVar[str] = "plugin_settings"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: UUID = server_default()
    tenant_id: str
    agent_id: str | None = None
    plugin_name: str
    enabled: bool = server_default()
    config: JsonObject = server_default()
    created_at: datetime = server_default()
    updated_at: datetime = server_default()
